;; refused: handler lacks on-event
(component
  (core module $m
    (func (export "echo") (param i32) (result i32) local.get 0))
  (core instance $i (instantiate $m))
  (func $invoke (param "command" u32) (result u32) (canon lift (core func $i "echo")))
  (instance $handler (export "invoke" (func $invoke)))
  (export "corral:plugin/handler@0.1.0" (instance $handler))
)
