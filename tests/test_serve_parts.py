"""The pieces under `corral serve`'s webhooks and schedules, each alone: the cron parser, the
circuit breaker, the SQLite event queue (shared by two processes) and the retry policy."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import vm_steps
from corral import CircuitOpen, ConfigError, PluginError, PluginTimeout
from corral._cron import CronExpression
from corral.config import BreakerOptions, HostConfig
from corral.serve._breaker import Breakers
from corral.serve._delivery import RetryPolicy
from corral.serve._queue import EventQueue, now_ms
from corral.serve._webhooks import WebhookIntake

ROOT = Path(__file__).resolve().parent.parent


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "fires"),
    [
        ("*/5 * * * *", "2026-01-01T00:03:10", "2026-01-01T00:05:00"),
        ("*/5 * * * *", "2026-01-01T00:05:00", "2026-01-01T00:10:00"),
        ("0 9 * * 1-5", "2026-11-21T10:00:00", "2026-11-23T09:00:00"),  # Saturday -> Monday
        ("30 2 1 * *", "2026-12-15T00:00:00", "2027-01-01T02:30:00"),
        ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
        ("0 0 13 * 5", "2026-11-01T00:00:00", "2026-11-06T00:00:00"),  # day OR weekday
        ("0 12 * * 7", "2026-11-23T00:00:00", "2026-11-29T12:00:00"),  # 7 is Sunday
        ("15,45 8-10/2 * * *", "2026-01-01T08:50:00", "2026-01-01T10:15:00"),
    ],
)
def test_cron_next_fire_time(expression: str, after: str, fires: str) -> None:
    assert CronExpression.parse(expression).next_after(_at(after)) == _at(fires)


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ("* * * *", "has 4 fields"),
        ("60 * * * *", "minute field '60'"),
        ("* 24 * * *", "hour field '24'"),
        ("0 0 30 2 *", "never fires"),
        ("5/2 * * * *", "minute field '5/2'"),
        ("*/0 * * * *", "minute field '\\*/0'"),
        ("mon * * * *", "not a number"),
    ],
)
def test_cron_refuses_what_it_cannot_run(expression: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        CronExpression.parse(expression)


def test_schedule_and_webhook_settings_are_checked_where_they_are_written() -> None:
    def check(plugin: dict[str, object]) -> str:
        with pytest.raises(Exception) as info:
            HostConfig.model_validate({"plugins": {"p": plugin}})
        return str(info.value)

    assert "exactly one of" in check({"schedule": [{"command": "sync"}]})
    assert "exactly one of" in check(
        {"schedule": [{"command": "s", "every": "1m", "cron": "* * * * *"}]}
    )
    assert "hour field" in check({"schedule": [{"command": "s", "cron": "0 25 * * *"}]})
    assert "a secret" in check({"webhooks": {"max_body": "1MB"}})
    assert "env:NAME" in check({"webhooks": {"secret": "hunter2"}})
    assert 'unknown key; did you mean "webhooks"?' in check({"webhook": {}})


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _trap() -> None:
    raise PluginTimeout("p", "timeout")


def _run(breakers: Breakers, fn: object) -> str:
    try:
        with breakers.guard("p"):
            if callable(fn):
                fn()
    except CircuitOpen:
        return "refused"
    except PluginTimeout:
        return "trapped"
    except PluginError:
        return "error value"
    return "ok"


def test_breaker_opens_after_traps_in_a_row_and_backs_off_longer_each_time() -> None:
    clock = _Clock()
    breakers = Breakers(BreakerOptions(failures=3, open_for="10s", max_open_for="25s"), clock=clock)
    assert [_run(breakers, _trap) for _ in range(3)] == ["trapped"] * 3
    assert _run(breakers, None) == "refused"
    assert breakers.states()["p"].state == "open"
    assert breakers.states()["p"].retry_in_s == 10
    clock.now += 10
    assert _run(breakers, _trap) == "trapped"  # the one trial call
    assert breakers.states()["p"].retry_in_s == 20  # doubled
    clock.now += 19
    assert _run(breakers, None) == "refused"
    clock.now += 1
    assert _run(breakers, _trap) == "trapped"
    assert breakers.states()["p"].retry_in_s == 25  # capped
    clock.now += 25
    assert _run(breakers, None) == "ok"  # the trial succeeds: closed, back-off forgotten
    assert breakers.states()["p"].state == "closed"
    assert [_run(breakers, _trap) for _ in range(3)] == ["trapped"] * 3
    assert breakers.states()["p"].retry_in_s == 10


def test_breaker_counts_error_values_as_answers_and_lets_one_trial_through() -> None:
    clock = _Clock()
    breakers = Breakers(BreakerOptions(failures=2), clock=clock)

    def error_value() -> None:
        raise PluginError("p", "invalid-input", "no")

    # An error value between two traps resets the count: the plugin is answering.
    assert [_run(breakers, f) for f in (_trap, error_value, _trap)] == [
        "trapped",
        "error value",
        "trapped",
    ]
    assert breakers.states()["p"].state == "closed"
    _run(breakers, _trap)
    clock.now += 5
    with breakers.guard("p"):  # the trial is running: nobody else gets in
        assert breakers.states()["p"].state == "half-open"
        assert _run(breakers, None) == "refused"
    assert breakers.states()["p"].state == "closed"


def test_breaker_of_a_plugin_starts_afresh_with_a_new_version() -> None:
    versions = {"p": "1.0"}
    breakers = Breakers(BreakerOptions(failures=1), version=versions.__getitem__, clock=_Clock())
    assert _run(breakers, _trap) == "trapped"
    assert _run(breakers, None) == "refused"
    versions["p"] = "1.1"
    assert _run(breakers, None) == "ok"
    assert "p" not in breakers.states()


def test_retry_policy_doubles_with_jitter_up_to_its_cap() -> None:
    policy = RetryPolicy(max_attempts=5, first_s=1.0, max_s=6.0)
    for attempts, ceiling in [(1, 1), (2, 2), (3, 4), (4, 6), (9, 6)]:
        delays = [policy.delay_s(attempts) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not in lockstep


def test_queue_keeps_order_dedupes_and_dead_letters(tmp_path: Path) -> None:
    queue = EventQueue(tmp_path / "events.db")
    first = queue.enqueue("a", "d1", "webhook", "t", "{}")
    assert first is not None
    assert queue.enqueue("a", "d1", "webhook", "t", '{"again": 1}') is None
    second = queue.enqueue("a", "d2", "webhook", "t", "{}")
    other = queue.enqueue("b", "d1", "webhook", "t", "{}")  # ids are per plugin
    assert sorted((e.plugin, e.seq) for e in queue.heads()) == [("a", first), ("b", other)]
    queue.mark_failed(first, "boom", 0)
    queue.mark_dead(first, "boom again")
    heads = {e.plugin: e for e in queue.heads()}
    assert heads["a"].seq == second
    dead = queue.list(state="dead")
    assert [(e.seq, e.attempts, e.last_error) for e in dead] == [(first, 2, "boom again")]
    assert queue.counts()["a"] == {"pending": 1, "dead": 1}
    assert queue.retry(first) and not queue.retry(first)
    assert queue.list(plugin="a", state="pending")[0].attempts == 0
    queue.mark_delivered(first)
    assert not queue.drop(first)  # delivered events stay, so their ids keep deduplicating
    assert queue.drop(second)
    assert queue.prune_delivered(older_than_ms=0) == 0
    assert queue.prune_delivered(older_than_ms=now_ms() + 1) == 1
    assert queue.enqueue("a", "d1", "webhook", "t", "{}") is not None  # forgotten: new again
    queue.close()


def test_queue_heads_cost_the_same_however_long_the_backlog(tmp_path: Path) -> None:
    def steps_to_read_heads(backlog: int) -> int:
        """SQLite VM steps of one `heads`, with `backlog` pending events per plugin."""
        queue = EventQueue(tmp_path / f"{backlog}.db")
        try:
            seqs: dict[str, list[int | None]] = {"a": [], "b": [], "c": []}
            for i in range(backlog):
                for plugin, queued in seqs.items():
                    queued.append(queue.enqueue(plugin, f"d{i}", "webhook", "t", "{}"))
            dead = seqs["b"].pop(0)
            assert dead is not None
            queue.mark_dead(dead, "gave up")  # b's next event becomes its head
            heads, steps = vm_steps(queue._db, queue.heads)
            assert {e.plugin: e.seq for e in heads} == {p: q[0] for p, q in seqs.items()}
            return steps
        finally:
            queue.close()

    # Index seeks per plugin: the same work however many events wait (a scan grows with them).
    assert steps_to_read_heads(1000) < 1.5 * steps_to_read_heads(10)


def test_queue_counts_of_one_plugin_do_not_read_the_others_backlog(tmp_path: Path) -> None:
    def steps_to_count(backlog: int) -> int:
        """SQLite VM steps of counting "a"'s events, with `backlog` events pending for "b"."""
        queue = EventQueue(tmp_path / f"{backlog}.db")
        try:
            for i in range(backlog):
                queue.enqueue("b", f"d{i}", "webhook", "t", "{}")
            seqs = [queue.enqueue("a", f"d{i}", "webhook", "t", "{}") for i in range(3)]
            assert seqs[0] is not None
            queue.mark_dead(seqs[0], "gave up")
            counts, steps = vm_steps(queue._db, lambda: queue.counts("a"))
            assert counts == {"a": {"pending": 2, "dead": 1}}
            return steps
        finally:
            queue.close()

    # `/plugins` counts each plugin's events: one plugin's count must not walk every backlog.
    assert steps_to_count(1000) < 1.5 * steps_to_count(10)


def _delivered(queue: EventQueue, plugin: str, count: int) -> list[int]:
    """Queue `count` events for `plugin` and mark them delivered; their seqs."""
    seqs = []
    for i in range(count):
        seq = queue.enqueue(plugin, f"d{i}", "webhook", "t", "{}")
        assert seq is not None
        queue.mark_delivered(seq)
        seqs.append(seq)
    return seqs


def test_queue_prune_reads_the_old_events_not_all_it_keeps(tmp_path: Path) -> None:
    def steps_to_prune(kept: int) -> int:
        """SQLite VM steps of pruning 2 old delivered events beside `kept` recent ones."""
        queue = EventQueue(tmp_path / f"{kept}.db")
        try:
            _delivered(queue, "old", 2)
            cutoff = now_ms() + 1
            with queue._db.writing() as conn:  # the recent ones finished after the cutoff
                conn.executemany(
                    "INSERT INTO events (plugin, delivery_id, source, type, payload,"
                    " received_at_ms, state, next_attempt_ms, finished_at_ms)"
                    " VALUES ('new', ?, 'webhook', 't', '{}', 0, 'delivered', 0, ?)",
                    [(f"d{i}", cutoff + i) for i in range(kept)],
                )
            pruned, steps = vm_steps(queue._db, lambda: queue.prune_delivered(cutoff))
            assert pruned == 2
            assert len(queue.list(limit=10_000)) == kept
            return steps
        finally:
            queue.close()

    # The prune holds the write lock webhooks wait for: its work must not grow with the week's
    # delivered events it keeps.
    assert steps_to_prune(1000) < 1.5 * steps_to_prune(10)


def test_queue_made_before_the_finish_index_gets_it(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    queue = EventQueue(path)
    _delivered(queue, "a", 2)
    queue.close()
    with sqlite3.connect(path) as conn:  # as a queue written by an older Corral left it
        conn.execute("DROP INDEX events_by_finish")
    queue = EventQueue(path)
    try:
        with queue._db.reading() as conn:
            plan = conn.execute(
                "EXPLAIN QUERY PLAN DELETE FROM events"
                " WHERE state = 'delivered' AND finished_at_ms < 0"
            ).fetchall()
        assert "events_by_finish" in str(plan)
        assert queue.prune_delivered(now_ms() + 1) == 2
    finally:
        queue.close()


def test_queue_commits_concurrent_events_together_and_still_deduplicates(tmp_path: Path) -> None:
    queue = EventQueue(tmp_path / "events.db")
    results: list[int | None] = []

    def sender() -> None:
        # Every sender sends the same 50 deliveries: each must be stored exactly once.
        for i in range(50):
            results.append(queue.enqueue("a", f"d{i}", "webhook", "t", f'{{"i": {i}}}'))

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = [seq for seq in results if seq is not None]
    assert len(results) == 400 and len(stored) == len(set(stored)) == 50
    events = queue.list(limit=1000)
    assert sorted(e.delivery_id for e in events) == sorted(f"d{i}" for i in range(50))
    assert {e.seq for e in events} == set(stored)
    queue.close()


def test_queue_is_shared_with_another_process(tmp_path: Path) -> None:
    """`corral events` works beside a running server: both open the same SQLite file."""
    queue = EventQueue(tmp_path / "events.db")
    seq = queue.enqueue("a", "d1", "webhook", "t", "{}")
    assert seq is not None
    queue.mark_dead(seq, "gave up")
    config = tmp_path / "corral.yaml"
    config.write_text("data_dir: .\n")
    env = {"PYTHONPATH": str(ROOT / "src")}
    listing = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral.cli",
            "events",
            "list",
            "--state",
            "dead",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    header, row = listing.stdout.splitlines()
    assert header.split()[:3] == ["SEQ", "PLUGIN", "STATE"]
    assert row.split()[:3] == [str(seq), "a", "dead"] and row.endswith("gave up")
    retry = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral.cli",
            "events",
            "retry",
            str(seq),
            "999",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert retry.returncode == 1
    assert retry.stdout == f"queued event {seq}\n"
    assert retry.stderr == "corral: no dead event 999\n"
    assert [e.seq for e in queue.heads()] == [seq]
    queue.close()


def test_webhook_secret_that_is_not_set_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CORRAL_TEST_UNSET", raising=False)
    config = HostConfig.model_validate(
        {"plugins": {"p": {"webhooks": {"secret": "env:CORRAL_TEST_UNSET"}}}}
    )
    intake = WebhookIntake(EventQueue(tmp_path / "events.db"), print, print)
    with pytest.raises(ConfigError, match=r"plugins\.p\.webhooks: secret env:CORRAL_TEST_UNSET"):
        intake.configure(config)
