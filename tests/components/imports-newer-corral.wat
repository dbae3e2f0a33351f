;; refused: imports corral:plugin/log@0.2.0; this host provides 0.1.0
(component
  (import "corral:plugin/log@0.2.0" (instance))
)
