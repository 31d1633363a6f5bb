"""A starting replica's peering priority: below every live peer, the drawn one when none is alive; expired
entries and malformed ones do not count."""

from __future__ import annotations

import datetime

from azure_identity_operator.handlers import peering

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def entry(priority: int, seconds_ago: float, lifetime: int = 60, *, naive: bool = False) -> dict[str, object]:
    seen = NOW - datetime.timedelta(seconds=seconds_ago)
    if naive:
        seen = seen.replace(tzinfo=None)
    return {"priority": priority, "lastseen": seen.isoformat(), "lifetime": lifetime}


def test_only_live_entries_count() -> None:
    status = {
        "alive": entry(500, 10),
        "alive-naive-time": entry(300, 10, naive=True),
        "expired": entry(100, 61),
        "left": entry(50, 0, lifetime=0),
        "malformed": {"priority": "x"},
        "not-an-entry": "text",
    }
    assert sorted(peering.live_priorities(status, now=NOW)) == [300, 500]
    assert peering.live_priorities(None, now=NOW) == []


def test_a_newcomer_ranks_below_every_live_peer() -> None:
    for _ in range(50):
        chosen = peering.priority_below([300, 500], default=10**6)
        assert 300 - peering.PRIORITY_GAP[1] <= chosen < 300
    assert peering.priority_below([], default=42) == 42
