"""The per-object controls and the ARM budget, with operators whose drift checks are far apart (30 s), so
what happens sooner is the control's doing, not a drift check's.

Covers: the reconcile-now annotation triggers a full reconcile at once (an identity deleted in Azure is
created again within seconds); a new value triggers it again; the pause annotation keeps the operator away
from Azure for that object and the next reconcile-now while paused does nothing in Azure either; a change
that waits for the operator's ARM budget shows `Queued` with its expected wait, then becomes Ready.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest
from azure.mgmt.msi import ManagedServiceIdentityClient

from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo

from .conftest import (
    StartOperator,
    declare_identity,
    get_object,
    operator_base_env,
    ready_condition,
    wait_ready,
)
from .operators import eventually

pytestmark = pytest.mark.e2e

RECONCILE_NOW = "identityoperator.dev/reconcile-now"
PAUSE = "identityoperator.dev/reconcile-policy"


def identity_names(client: ManagedServiceIdentityClient, resource_group: str) -> list[str]:
    return sorted(i.name for i in client.user_assigned_identities.list_by_resource_group(resource_group))


def test_reconcile_now_repairs_at_once_and_pause_keeps_the_operator_away(
    start_operator: StartOperator,
    azure_emulator: AzureEmulatorInfo,
    ops_kube: KubeEmulatorInfo,
    ops_namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    operator = start_operator(
        "controls", env=operator_base_env(azure_emulator, ops_kube), args=["-n", ops_namespace]
    )
    operator.wait_ready()
    name = declare_identity(ops_kube, ops_namespace, resource_group)
    wait_ready(ops_kube, ops_namespace, name)
    first_principal = get_object(ops_kube, ops_namespace, name)["status"]["principalId"]

    for attempt in ("1", "2"):
        msi_client.user_assigned_identities.delete(resource_group, name)  # behind the operator's back
        asked = time.monotonic()
        ops_kube.kubectl(
            "annotate", "--overwrite", "-n", ops_namespace, f"uai/{name}", f"{RECONCILE_NOW}={attempt}"
        )
        eventually(
            lambda: identity_names(msi_client, resource_group) == [name], timeout=10, what="re-creation"
        )
        assert time.monotonic() - asked < 10, "long before the 30 s drift check"

    def new_principal() -> str | None:
        found = get_object(ops_kube, ops_namespace, name)["status"].get("principalId")
        return str(found) if found and found != first_principal else None

    eventually(new_principal, timeout=10, what="the re-created identity's principal in status")

    ops_kube.kubectl("annotate", "-n", ops_namespace, f"uai/{name}", f"{PAUSE}=skip")
    eventually(
        lambda: (ready_condition(get_object(ops_kube, ops_namespace, name)) or {}).get("reason") == "Paused",
        timeout=10,
        what="Paused",
    )
    msi_client.user_assigned_identities.delete(resource_group, name)
    ops_kube.kubectl("annotate", "--overwrite", "-n", ops_namespace, f"uai/{name}", f"{RECONCILE_NOW}=3")
    time.sleep(3)
    assert identity_names(msi_client, resource_group) == [], "paused: reconcile-now touches nothing in Azure"


def test_a_change_waiting_for_arm_budget_shows_queued_then_ready(
    start_operator: StartOperator,
    azure_emulator: AzureEmulatorInfo,
    ops_kube: KubeEmulatorInfo,
    ops_namespace: str,
    resource_group: str,
) -> None:
    # A write bucket of one request refilled every 8 s: the second identity's PUT waits its turn.
    env = operator_base_env(azure_emulator, ops_kube, IDENTITY_OPERATOR_ARM_BUCKETS="writes=1:0.125")
    operator = start_operator("budget", env=env, args=["-n", ops_namespace])
    operator.wait_ready()
    names = [declare_identity(ops_kube, ops_namespace, resource_group) for _ in range(2)]

    def queued() -> Mapping[str, Any] | None:
        for name in names:
            condition = ready_condition(get_object(ops_kube, ops_namespace, name)) or {}
            if condition.get("reason") == "Queued":
                return condition
        return None

    condition = eventually(queued, timeout=10, what="an identity waiting for budget to show Queued")
    assert condition["status"] == "False"
    assert "waiting about" in condition["message"]
    wait_ready(ops_kube, ops_namespace, *names, timeout=30)
    for name in names:
        reasons = [c.get("reason") for c in get_object(ops_kube, ops_namespace, name)["status"]["conditions"]]
        assert "Throttled" not in reasons
