;; refused: imports corral:plugin/secrets@0.1.0, which is not part of the world
(component
  (import "corral:plugin/secrets@0.1.0" (instance))
)
