"""Five-field cron expressions (``minute hour day-of-month month day-of-week``), in UTC.

Each field is ``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of
those; day-of-week counts from 0 (Sunday) and 7 is Sunday too. As in Vixie cron, when both
day fields are restricted a day matching either one fires. Names (``mon``, ``jan``) and the
``@daily`` shorthands are not accepted: schedules that need them can say ``every:``.

A parser this small keeps a dependency out of the core; the next fire time is found by
skipping whole months, days and hours that cannot match, so it costs a few hundred steps at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["CronExpression"]

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
# A date that can match at all matches within 8 years (29 February needs a leap year).
_HORIZON = timedelta(days=8 * 366)


def _parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                start, end = low, high
            elif "-" in body:
                first, _, last = body.partition("-")
                start, end = int(first), int(last)
            else:
                start = end = int(body)
        except ValueError:
            raise ValueError(f"{name} field {part!r} is not a number, range or step") from None
        if step < 1 or not low <= start <= end <= high or (step_text and body.isdigit()):
            raise ValueError(f"{name} field {part!r} is outside {low}-{high} or malformed")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression; `next_after` gives its next fire time."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0-6, Monday first as in `datetime.weekday()`."""
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse `text`; `ValueError` names the field that is wrong."""
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(
                f'"{text}" has {len(parts)} fields; cron needs 5 '
                "(minute hour day-of-month month day-of-week)"
            )
        fields = [_parse_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
        # cron counts Sunday as 0 (and 7); datetime.weekday() counts Monday as 0.
        weekdays = frozenset((d - 1) % 7 for d in fields[4])
        expression = cls(
            text,
            fields[0],
            fields[1],
            fields[2],
            fields[3],
            weekdays,
            parts[2] == "*",
            parts[4] == "*",
        )
        if expression.next_after(datetime(2000, 1, 1, tzinfo=UTC)) is None:
            raise ValueError(f'"{text}" never fires (no such date)')
        return expression

    def _day_matches(self, moment: datetime) -> bool:
        by_date = moment.day in self.days
        by_weekday = moment.weekday() in self.weekdays
        if self.any_day or self.any_weekday:
            return by_date and by_weekday
        return by_date or by_weekday

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after `moment` (aware; UTC), or None if never."""
        moment = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = moment + _HORIZON
        while moment < limit:
            if moment.month not in self.months:
                year, month = divmod(moment.month, 12)
                moment = moment.replace(
                    year=moment.year + year, month=month + 1, day=1, hour=0, minute=0
                )
            elif not self._day_matches(moment):
                moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
            elif moment.hour not in self.hours:
                moment = (moment + timedelta(hours=1)).replace(minute=0)
            elif moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
            else:
                return moment
        return None
