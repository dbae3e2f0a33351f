;; refused: imports corral:plugin/log@0.2.0; this host provides 0.1.1
(component
  (import "corral:plugin/log@0.2.0" (instance))
)
