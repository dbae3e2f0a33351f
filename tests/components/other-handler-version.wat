;; refused: exports corral:plugin/handler@0.2.0 instead of the version this host calls
(component
  (instance $handler)
  (export "corral:plugin/handler@0.2.0" (instance $handler))
)
