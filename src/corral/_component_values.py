"""Host functions whose component types are resolved once, and bytes copied in bulk.

wasmtime-py converts component values generically: on every host call it builds the function's
type again and re-reads each part of it from Wasmtime through FFI (a variant's eight cases, a
record's fields, whether a result is "tagged"), and it converts a ``list<u8>`` one byte at a
time. For a host function the type never changes, so here it is read on the first call and
*frozen*: every property conversions ask for is computed once and kept on the type object.
Byte lists are laid out in C with strided slice assignments instead of a Python loop per
byte, a block at a time (each byte still takes a 32-byte value in C: large bodies do not cross
as lists).

Measured with bench/hostapi.py and bench/runtime.py: a ``tasks.get`` host call went from about
315 µs to 77 µs, ``log`` from about 110 µs to 28 µs, and an ``invoke("echo")`` round trip from
about 280 µs to 130 µs.

This leans on wasmtime-py's type classes (pinned to 50.x in pyproject.toml); the tests that
call every host function through real components are what guards it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from wasmtime import Store, WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime._slab import Slab
from wasmtime.component import (
    U8,
    EnumType,
    FlagsType,
    Func,
    FuncType,
    LinkerInstance,
    ListType,
    OptionType,
    RecordType,
    ResultType,
    TupleType,
    ValType,
    VariantType,
)
from wasmtime.component._enter import catch_exceptions, enter_wasm
from wasmtime.component._types import VariantLikeType

__all__ = ["ExportFunc", "add_host_func", "freeze"]

_VAL_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)
_PAYLOAD_OFFSET = ffi.wasmtime_component_val_t.of.offset
_U8_KIND = ffi.WASMTIME_COMPONENT_U8.value


# Byte lists are converted this many elements at a time (1 MiB of values): strided slices of
# a Python bytearray are several times faster than of a memoryview over C memory, and a block
# keeps the extra copy small.
_BLOCK = 32768
_U8_BLOCK = bytes([_U8_KIND]).ljust(_VAL_SIZE, b"\0") * _BLOCK
"""A block of u8 values, all zero: the payloads are written over it."""


def _address(raw: Any) -> int:
    address = ctypes.cast(raw.data, ctypes.c_void_p).value
    assert address is not None
    return address


def _bytes_to_c(data: bytes, ptr: Any) -> None:
    if not isinstance(data, bytes | bytearray):
        raise TypeError("expected bytes value")
    count = len(data)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, count)
    if count:
        address = _address(raw)
        block = bytearray(_U8_BLOCK[: min(count, _BLOCK) * _VAL_SIZE])
        for start in range(0, count, _BLOCK):
            size = min(_BLOCK, count - start)
            block[_PAYLOAD_OFFSET : size * _VAL_SIZE : _VAL_SIZE] = data[start : start + size]
            buffer = (ctypes.c_char * len(block)).from_buffer(block)
            ctypes.memmove(address + start * _VAL_SIZE, buffer, size * _VAL_SIZE)
    ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
    ptr.contents.of.list = raw


def _bytes_from_c(c: Any) -> bytes:
    raw = c.of.list
    try:
        if not raw.size:
            return b""
        address = _address(raw)
        return b"".join(
            ctypes.string_at(
                address + start * _VAL_SIZE, min(_BLOCK, raw.size - start) * _VAL_SIZE
            )[_PAYLOAD_OFFSET::_VAL_SIZE]
            for start in range(0, raw.size, _BLOCK)
        )
    finally:
        ffi.wasmtime_component_vallist_delete(ctypes.byref(raw))


class _FrozenList(ListType):
    @cached_property
    def element(self) -> ValType:
        return freeze(super().element)

    @cached_property
    def _bytes(self) -> bool:
        return isinstance(self.element, U8)

    def _is_bytes(self) -> bool:
        return self._bytes

    def convert_to_c(self, store: Any, val: Any, ptr: Any) -> None:
        if self._bytes:
            _bytes_to_c(val, ptr)
        else:
            super().convert_to_c(store, val, ptr)

    def convert_from_c(self, c: Any) -> Any:
        return _bytes_from_c(c) if self._bytes else super().convert_from_c(c)


class _FrozenRecord(RecordType):
    @cached_property
    def fields(self) -> list[tuple[str, ValType]]:
        return [(name, freeze(ty)) for name, ty in super().fields]


class _FrozenTuple(TupleType):
    @cached_property
    def elements(self) -> list[ValType]:
        return [freeze(ty) for ty in super().elements]


def _tagged_once(self: VariantLikeType) -> bool:
    """Memoizes the "tagged" question every lowering asks of variants, options and results."""
    tagged = self.__dict__.get("_tagged_value")
    if tagged is None:
        tagged = self.__dict__["_tagged_value"] = VariantLikeType._tagged(self)
    return bool(tagged)


class _FrozenVariant(VariantType):
    _tagged = _tagged_once

    @cached_property
    def cases(self) -> list[tuple[str, ValType | None]]:
        return [(name, None if ty is None else freeze(ty)) for name, ty in super().cases]


class _FrozenOption(OptionType):
    _tagged = _tagged_once

    @cached_property
    def payload(self) -> ValType:
        return freeze(super().payload)


class _FrozenResult(ResultType):
    _tagged = _tagged_once

    @cached_property
    def ok(self) -> ValType | None:
        ty = super().ok
        return None if ty is None else freeze(ty)

    @cached_property
    def err(self) -> ValType | None:
        ty = super().err
        return None if ty is None else freeze(ty)


class _FrozenEnum(EnumType):
    @cached_property
    def names(self) -> list[str]:
        return super().names


class _FrozenFlags(FlagsType):
    @cached_property
    def names(self) -> list[str]:
        return super().names


_FROZEN: dict[type, type] = {
    ListType: _FrozenList,
    RecordType: _FrozenRecord,
    TupleType: _FrozenTuple,
    VariantType: _FrozenVariant,
    OptionType: _FrozenOption,
    ResultType: _FrozenResult,
    EnumType: _FrozenEnum,
    FlagsType: _FrozenFlags,
}


def freeze(ty: ValType) -> ValType:
    """`ty`, turned in place into a subclass that remembers what it reads from Wasmtime."""
    frozen = _FROZEN.get(type(ty))
    if frozen is not None:
        ty.__class__ = frozen
    return ty


@dataclass
class _HostFunc:
    func: Callable[..., Any]
    signature: tuple[list[ValType], ValType | None] | None = field(default=None)


_HOST_FUNCS: Slab[_HostFunc] = Slab()


def _frozen_signature(func_type: FuncType) -> tuple[list[ValType], ValType | None]:
    """A function's parameter and result types, frozen; `func_type` is closed afterwards."""
    with func_type:
        result = func_type.result
        return (
            [freeze(ty) for _, ty in func_type.params],
            None if result is None else freeze(result),
        )


@ffi.wasmtime_component_func_callback_t
def _call_host(idx, context, ty_raw, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    entry = _HOST_FUNCS.get(idx or 0)

    def run(store: Any) -> None:
        if entry.signature is None:
            # Each linker serves one component, so a definition always sees the same type.
            entry.signature = _frozen_signature(FuncType._from_ptr(ty_raw, owner=store))
        params, result_type = entry.signature
        values = [ty.convert_from_c(args[i]) for i, ty in enumerate(params)]
        returned = entry.func(store, *values)
        if result_type is not None:
            result_type.convert_to_c(store, returned, results)

    return catch_exceptions(context, run)


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _forget_host(idx):  # type: ignore[no-untyped-def]
    if _HOST_FUNCS:
        _HOST_FUNCS.deallocate(idx or 0)


class ExportFunc:
    """A function a component instance exports, callable like `Func`, types frozen on first use.

    Calls into the guest pay the same generic conversion as host calls do; freezing the
    export's types once takes most of that cost off every call.
    """

    def __init__(self, func: Func) -> None:
        self._func = func
        self._signature: tuple[list[ValType], ValType | None] | None = None

    def __call__(self, store: Store, *args: Any) -> Any:
        if self._signature is None:
            self._signature = _frozen_signature(self._func.type(store))
        params, result_type = self._signature
        if len(args) != len(params):
            raise TypeError(f"expected {len(params)} arguments, got {len(args)}")
        lowered_args = (ffi.wasmtime_component_val_t * len(params))()
        lowered = 0
        try:
            for ty, value in zip(params, args, strict=True):
                ty.convert_to_c(store, value, ctypes.pointer(lowered_args[lowered]))
                lowered += 1
            out = ffi.wasmtime_component_val_t()
            out_ref = ctypes.byref(out) if result_type is not None else None
            func = ctypes.byref(self._func._func)
            context = store._context()
            count = 0 if result_type is None else 1

            def call() -> Any:
                return ffi.wasmtime_component_func_call(
                    func, context, lowered_args, lowered, out_ref, count
                )

            enter_wasm(call)
            return None if result_type is None else result_type.convert_from_c(out)
        finally:
            for i in range(lowered):
                ffi.wasmtime_component_val_delete(ctypes.byref(lowered_args[i]))

    def post_return(self, store: Store) -> None:
        self._func.post_return(store)


def add_host_func(instance: LinkerInstance, name: str, func: Callable[..., Any]) -> None:
    """`LinkerInstance.add_func`, with the function's types frozen on its first call."""
    encoded = name.encode("utf-8")
    idx = _HOST_FUNCS.allocate(_HostFunc(func))
    error = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(),
        ctypes.create_string_buffer(encoded),
        len(encoded),
        _call_host,
        idx,
        _forget_host,
    )
    if error:
        raise WasmtimeError._from_ptr(error)
