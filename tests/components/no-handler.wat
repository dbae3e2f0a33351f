;; refused: does not export corral:plugin/handler@0.1.0
(component)
