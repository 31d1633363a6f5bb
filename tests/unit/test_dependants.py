"""Waking dependants: each dependant whose recorded principal differs is patched, and one failed write does
not keep the others waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

import kopf

from azure_identity_operator.api import constants
from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.handlers.dependants import DependantWiring
from azure_identity_operator.handlers.kube import KubeWriter

PRINCIPAL = "11111111-1111-1111-1111-111111111111"


class RecordingKube:
    """Stands in for `KubeWriter.patch_annotations`: records patches, fails for the names it is told."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.patched: dict[str, Mapping[str, str | None]] = {}

    async def patch_annotations(
        self, *, plural: str, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> bool:
        if name in self.failing:
            raise ConnectionError("API server unreachable")
        self.patched[name] = dict(annotations)
        return True


def identity(ready: bool) -> PrincipalSnapshot:
    return PrincipalSnapshot(
        kind="UserAssignedIdentity",
        namespace="team",
        name="app",
        ready=ready,
        deleting=False,
        principal_id=PRINCIPAL,
        client_id=None,
        tenant_id=None,
        resource_id=None,
    )


def wiring() -> DependantWiring:
    wired = DependantWiring(kopf.OperatorRegistry())
    wired.register(constants.ROLE_ASSIGNMENT, lambda body: ("UserAssignedIdentity", "app"))
    return wired


def indexes(*entries: tuple[str, str | None]) -> dict[str, Any]:
    return {"roleassignments_by_identity": {("UserAssignedIdentity", "team", "app"): list(entries)}}


def test_dependants_not_yet_pointed_at_the_principal_are_woken_and_a_failed_write_skips_only_itself() -> None:
    kube = RecordingKube(failing={"broken"})
    found = indexes(("broken", None), ("current", PRINCIPAL), ("stale", ""))
    woken = asyncio.run(wiring().wake(cast(KubeWriter, kube), identity(ready=True), found))
    assert woken == 1
    assert kube.patched == {"stale": {constants.IDENTITY_PRINCIPAL_ANNOTATION: PRINCIPAL}}


def test_an_identity_that_is_not_ready_points_its_dependants_at_no_principal() -> None:
    kube = RecordingKube(failing=set())
    found = indexes(("was-using-it", PRINCIPAL), ("never-woken", ""))
    woken = asyncio.run(wiring().wake(cast(KubeWriter, kube), identity(ready=False), found))
    assert woken == 1
    assert kube.patched == {"was-using-it": {constants.IDENTITY_PRINCIPAL_ANNOTATION: ""}}
