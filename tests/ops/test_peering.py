"""A starting replica's peering priority: below every live peer, the drawn one when none is alive; expired
entries and malformed ones do not count."""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from typing import Any

import pytest

from azure_identity_operator.handlers import kube_api, peering
from fixtures.kube_emulator import KubeEmulatorInfo

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


def test_the_peering_object_is_read_in_each_namespace_or_at_cluster_scope(
    ops_kube: KubeEmulatorInfo, ops_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the operator's own client, logged in as kopf (here: the kubeconfig), by `list` with a field
    selector, the verb the RBAC grants on peering objects."""
    name = f"peering-{uuid.uuid4().hex[:6]}"
    status = {"replica-a": entry(500, 0)}
    other_status = {"replica-b": entry(7, 0)}
    for manifest in (
        {"kind": "KopfPeering", "metadata": {"name": name, "namespace": ops_namespace}, "status": status},
        {
            "kind": "KopfPeering",
            "metadata": {"name": "other", "namespace": ops_namespace},
            "status": other_status,
        },
        {"kind": "ClusterKopfPeering", "metadata": {"name": name}, "status": other_status},
    ):
        ops_kube.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "kopf.dev/v1", **manifest}))
    monkeypatch.setenv("KUBECONFIG", str(ops_kube.kubeconfig))

    async def read(namespaces: list[str]) -> list[Any]:
        client = kube_api.KubeClient()
        try:
            return await peering.peering_statuses(client, name, namespaces)
        finally:
            await client.close()

    assert asyncio.run(read([ops_namespace])) == [status]
    assert asyncio.run(read([])) == [other_status]
    assert asyncio.run(read(["default"])) == []
    records = [r for r in ops_kube.audit_records() if r["userAgent"] == kube_api.USER_AGENT]
    assert {(r["verb"], r["resource"], r["code"]) for r in records[-3:]} == {
        ("list", "kopfpeerings", 200),
        ("list", "clusterkopfpeerings", 200),
    }
