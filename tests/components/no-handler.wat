;; refused: does not export corral:plugin/handler@0.1.1 or an earlier 0.1.x
(component)
