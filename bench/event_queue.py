"""Event queue (``events.db``): what the server's queue work costs as the queue grows.

    .venv/bin/python bench/event_queue.py [--small 1000] [--large 100000] [--plugins 5]

Two queues are filled directly (one transaction each): `--small` and `--large` pending events
over `--plugins` plugins, beside nine times as many delivered ones (a week kept for
deduplication). For each, the median time of what the server does as it runs:

- ``heads()``: read after every delivery by the dispatcher;
- ``counts(plugin)``: once per plugin for ``/plugins``, here of a plugin with 3 events of its
  own (counting grows with that plugin's events, and should not with the others');
- ``prune_delivered``: hourly, under the write lock webhooks wait for (nothing old to prune);
- a delivery: ``heads()`` then ``mark_delivered`` of one head, as the dispatcher does.

The ratio large/small is printed beside each: about 1 when the work does not grow with the
queue (SQLite's B-trees add a little per level).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from corral.serve._queue import EventQueue


def filled(path: Path, pending: int, plugins: int) -> EventQueue:
    queue = EventQueue(path)
    rows = []
    for i in range(pending * 10):
        state = "pending" if i % 10 == 0 else "delivered"
        finished = None if state == "pending" else 1_000_000 + i
        rows.append((f"p{i % plugins}", f"d{i}", "{}", i, state, finished))
    rows += [("quiet", f"d{i}", "{}", i, "pending", None) for i in range(3)]
    with queue._db.writing() as conn:
        conn.executemany(
            "INSERT INTO events (plugin, delivery_id, source, type, payload, received_at_ms,"
            " state, next_attempt_ms, finished_at_ms) VALUES (?, ?, 'webhook', 't', ?, ?, ?, 0, ?)",
            rows,
        )
    return queue


def median_ms(action: Callable[[], object], repeat: int = 50) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(queue: EventQueue) -> dict[str, float]:
    def deliver() -> None:
        queue.mark_delivered(queue.heads()[0].seq)

    return {
        "heads()": median_ms(queue.heads),
        "counts(plugin), 3 of its own": median_ms(lambda: queue.counts("quiet")),
        "prune_delivered (nothing old)": median_ms(lambda: queue.prune_delivered(0), 5),
        "one delivery (heads + mark)": median_ms(deliver),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--plugins", type=int, default=5)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for pending in (args.small, args.large):
            queue = filled(Path(tmp) / f"{pending}.db", pending, args.plugins)
            try:
                results.append(measure(queue))
            finally:
                queue.close()
    small, large = results
    print(f"pending events: {args.small:,} vs {args.large:,} (x9 delivered kept each)")
    for name in small:
        ratio = large[name] / small[name]
        print(f"  {name:<32}{small[name]:>9.3f} ms {large[name]:>9.3f} ms   x{ratio:.1f}")


if __name__ == "__main__":
    main()
