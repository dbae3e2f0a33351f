;; refused: handler#invoke takes a u32 and returns a u32, not the world's function type
(component
  (core module $m
    (func (export "echo") (param i32) (result i32) local.get 0))
  (core instance $i (instantiate $m))
  (func $invoke (param "command" u32) (result u32) (canon lift (core func $i "echo")))
  (func $on-event (param "event" u32) (result u32) (canon lift (core func $i "echo")))
  (instance $handler (export "invoke" (func $invoke)) (export "on-event" (func $on-event)))
  (export "corral:plugin/handler@0.1.0" (instance $handler))
)
