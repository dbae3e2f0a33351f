"""SQLiteKVStore against real SQLite files."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral._errors import InvalidInput, NotFound
from corral.kvstore import SQLiteKVStore
from corral.tasks import SQLiteTaskStore

KIB = 1 << 10


@pytest.fixture
def kv(tmp_path: Path) -> Iterator[SQLiteKVStore]:
    store = SQLiteKVStore(
        tmp_path / "kv.db", max_key_bytes=16, max_value_bytes=KIB, max_plugin_bytes=4 * KIB
    )
    yield store
    store.close()


def all_keys(kv: SQLiteKVStore, prefix: str, limit: int) -> list[list[str]]:
    pages = []
    cursor = None
    while True:
        keys, cursor = kv.list_keys("p", prefix, cursor, limit)
        pages.append(keys)
        if cursor is None:
            return pages


def test_get_set_delete(kv: SQLiteKVStore) -> None:
    with pytest.raises(NotFound, match='kv key "cursor" is not set'):
        kv.get("p", "cursor")
    kv.set("p", "cursor", b"\x00abc")
    assert kv.get("p", "cursor") == b"\x00abc"
    kv.set("p", "cursor", b"")
    assert kv.get("p", "cursor") == b""
    assert kv.delete("p", "cursor") is True
    assert kv.delete("p", "cursor") is False
    with pytest.raises(NotFound):
        kv.get("p", "cursor")


def test_plugins_are_isolated(kv: SQLiteKVStore) -> None:
    kv.set("a", "k", b"from a")
    kv.set("b", "k", b"from b")
    assert (kv.get("a", "k"), kv.get("b", "k")) == (b"from a", b"from b")
    assert kv.list_keys("c", "", None, 10) == ([], None)
    kv.delete("a", "k")
    assert kv.get("b", "k") == b"from b"
    assert (kv.usage("a"), kv.usage("b"), kv.usage("c")) == (0, 7, 0)


def test_prefix_listing_pages_in_order(kv: SQLiteKVStore) -> None:
    keys = [f"snap/{i:03}" for i in range(23)] + [
        "snap",
        "snaq",
        "sna",
        "cursor",
        "snap/\U0010ffff",
    ]
    for key in keys:
        kv.set("p", key, b"v")
    kv.set("other", "snap/x", b"v")

    snap = sorted(k for k in keys if k.startswith("snap/"))
    for limit in (1, 5, 24, 1000):
        pages = all_keys(kv, "snap/", limit)
        assert all(len(page) == limit for page in pages[:-1])
        assert [key for page in pages for key in page] == snap
    assert [k for page in all_keys(kv, "", 7) for k in page] == sorted(keys)
    assert kv.list_keys("p", "snap/\U0010ffff", None, 10) == (["snap/\U0010ffff"], None)
    assert kv.list_keys("p", "zzz", None, 10) == ([], None)


def test_list_keys_rejects_a_foreign_cursor(kv: SQLiteKVStore) -> None:
    with pytest.raises(InvalidInput, match="was not returned by list_keys"):
        kv.list_keys("p", "", "not base64!", 10)


def test_compare_and_set(kv: SQLiteKVStore) -> None:
    assert kv.compare_and_set("p", "lock", None, b"me") is True  # create if unset
    assert kv.compare_and_set("p", "lock", None, b"you") is False  # already set
    assert kv.compare_and_set("p", "lock", b"you", b"x") is False  # wrong expectation
    assert kv.get("p", "lock") == b"me"
    assert kv.compare_and_set("p", "lock", b"me", b"next") is True
    assert kv.get("p", "lock") == b"next"
    assert kv.usage("p") == len("lock") + len("next")


def test_compare_and_set_is_atomic_across_threads(tmp_path: Path) -> None:
    kv = SQLiteKVStore(tmp_path / "kv.db")
    kv.set("p", "counter", b"0")

    def bump(times: int) -> None:
        done = 0
        while done < times:
            current = kv.get("p", "counter")
            if kv.compare_and_set("p", "counter", current, str(int(current) + 1).encode()):
                done += 1

    threads = [threading.Thread(target=bump, args=(50,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert kv.get("p", "counter") == b"200"
    kv.close()


def test_size_limits(kv: SQLiteKVStore) -> None:
    with pytest.raises(InvalidInput) as caught:
        kv.set("p", "cursor", b"x" * (2 * KIB + 1))
    assert str(caught.value) == 'kv value for "cursor" is 2.0 KiB; the limit is 1 KiB per value'
    with pytest.raises(InvalidInput, match=r"is 17 B; the limit is 16 B per key$"):
        kv.set("p", "k" * 17, b"")
    with pytest.raises(InvalidInput, match="must not be empty"):
        kv.set("p", "", b"")

    # Four values of 1 KiB minus their 2-byte keys fill the plugin's 4 KiB exactly.
    for i in range(4):
        kv.set("p", f"k{i}", b"x" * (KIB - 2))
    assert kv.usage("p") == 4 * KIB
    with pytest.raises(InvalidInput) as caught:
        kv.set("p", "k4", b"x")
    assert str(caught.value) == (
        'kv store of plugin "p" would hold 4.0 KiB; the limit is 4 KiB per plugin'
    )
    with pytest.raises(InvalidInput, match="per plugin"):
        kv.compare_and_set("p", "k0", b"x" * (KIB - 2), b"x" * (KIB - 1))
    # Overwriting with the same size or smaller is fine at the limit; other plugins are unaffected.
    kv.set("p", "k0", b"y" * (KIB - 2))
    kv.set("p", "k1", b"")
    assert kv.usage("p") == 3 * KIB + 2
    kv.set("q", "k", b"x" * (KIB - 1))
    assert kv.usage("q") == KIB


def test_shares_a_file_with_the_task_store(tmp_path: Path) -> None:
    path = tmp_path / "corral.db"
    tasks = SQLiteTaskStore(path)
    kv = SQLiteKVStore(path)
    [task] = tasks.put_many([{"title": "t"}], actor="host")
    kv.set("p", "last-seen", task.id.encode())
    kv.close()
    tasks.close()
    reopened = SQLiteKVStore(path)
    assert reopened.get("p", "last-seen") == task.id.encode()
    reopened.close()
