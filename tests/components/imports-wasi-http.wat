;; refused: imports wasi:http/types@0.2.0, which the host never links
(component
  (import "wasi:http/types@0.2.0" (instance))
)
