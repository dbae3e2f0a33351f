;; refused: imports a WASI 0.2 release candidate, which Wasmtime's WASI 0.2 does not satisfy
(component
  (import "wasi:cli/environment@0.2.0-rc-2023-11-10" (instance))
)
