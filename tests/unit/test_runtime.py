"""The handler runtime's serialization: a drift reconcile never runs beside or after another reconcile it
would repeat, nor after a cleanup."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from azure_identity_operator.handlers import runtime
from azure_identity_operator.status import outcome


def live_body(uid: str) -> tuple[dict[str, Any], kopf.Body]:
    """A raw object and kopf's live view of it, as timers get (changes to the raw dict show through)."""
    raw: dict[str, Any] = {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "UserAssignedIdentity",
        "metadata": {"name": "app", "namespace": "team", "uid": uid, "generation": 1},
        "spec": {},
    }
    return raw, kopf.Body(raw)


def test_a_reconcile_waiting_behind_a_cleanup_is_skipped_once_deletion_began() -> None:
    raw, body = live_body("uid-waiting")
    patch = kopf.Patch()
    runs: list[str] = []

    async def run() -> outcome.Outcome:
        runs.append("reconciled")
        return outcome.succeeded("done")

    async def scenario() -> outcome.Outcome | None:
        lock = runtime.object_lock("uid-waiting")
        await lock.acquire()  # the cleanup handler holds the object
        waiting = asyncio.create_task(
            runtime.reconcile_and_report(
                body=body, patch=patch, logger=logging.getLogger("test"), retry=0, run=run, action="x"
            )
        )
        await asyncio.sleep(0.01)
        assert not waiting.done()
        raw["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        lock.release()
        return await waiting

    assert asyncio.run(scenario()) is None
    assert runs == []
    assert not patch


def test_a_drift_check_is_due_only_with_current_status_and_no_reconcile_in_progress() -> None:
    raw, body = live_body("uid-drift")
    assert not runtime.drift_check_due(body), "no status yet: the creation handler is in charge"
    raw["status"] = {"observedGeneration": 1}
    assert runtime.drift_check_due(body)

    async def while_reconciling() -> bool:
        async with runtime.object_lock("uid-drift"):
            return runtime.drift_check_due(body)

    assert not asyncio.run(while_reconciling())
    raw["metadata"]["generation"] = 2
    assert not runtime.drift_check_due(body), "a spec change whose status has not arrived yet"
