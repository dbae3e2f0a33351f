"""Size and duration strings, as operators write them in corral.yaml and manifests."""

import pytest

from corral._units import format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("30s", 30.0), ("1.5m", 90.0), ("1h", 3600.0), ("2d", 172800.0), (5, 5.0)],
)
def test_durations_in_every_unit(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1w", "h", "-1s", "1 hour", ""])
def test_a_duration_in_no_known_unit_is_refused(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_sizes_are_binary_whichever_spelling():
    assert parse_size("64MB") == parse_size("64MiB") == 64 << 20
    assert format_size(64 << 20) == "64 MiB"
