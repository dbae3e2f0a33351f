"""JSON values over the `kv` import, which stores bytes: the plugin's private state.

Values are encoded one way (compact, keys sorted), so `compare_and_set` matches a value this
module wrote whatever the order of its keys.
"""

import json

from componentize_py_types import Err
from wit_world.imports import kv as _kv

from . import errors


def _encode(value):
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def get(key, default=None):
    """The value at `key`, or `default` when it is unset."""
    try:
        return json.loads(_kv.get(key))
    except Err as error:
        if errors.is_not_found(error):
            return default
        raise


def set(key, value):
    """Store a JSON-able value at `key`."""
    _kv.set(key, _encode(value))


def delete(key):
    """Remove `key`; returns whether it was set."""
    return _kv.delete(key)


def keys(prefix="", page=500):
    """Every key starting with `prefix`, in order (read `page` at a time)."""
    cursor = None
    while True:
        found = _kv.list_keys(prefix, cursor, page)
        yield from found.keys
        cursor = found.next_cursor
        if cursor is None:
            return


def compare_and_set(key, expected, value):
    """Set `key` to `value` only if it holds `expected` now (None: only if unset); returns
    whether it did. For taking a lease or advancing a cursor when other calls of the plugin
    (webhooks, a second instance) may do the same."""
    current = None if expected is None else _encode(expected)
    return _kv.compare_and_set(key, current, _encode(value))
