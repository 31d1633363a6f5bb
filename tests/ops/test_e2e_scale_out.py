"""High availability and scale-out, with real operator processes.

Covers: two replicas of one peering (kopf peering through a KopfPeering object): the second to start ranks
itself below the first and stands by, reconciling nothing while the first works; killed without warning,
the active one is replaced by the standby once its peering entry expires. And two operators with disjoint
namespace sets (the namespaced installation shape, a KopfPeering per namespace): each reconciles only its
own namespace, as its structured log and the objects' status show.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo

from .conftest import StartOperator, declare_identity, operator_base_env, wait_ready
from .operators import OperatorProcess, eventually

pytestmark = pytest.mark.e2e

PEERING = "azure-identity-operator"
PEERING_LIFETIME_SECONDS = 4
RECONCILES = "azure_identity_operator_reconciles_total"


def create_peering(kube: KubeEmulatorInfo, namespace: str) -> None:
    kube.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "KopfPeering",
                "metadata": {"name": PEERING, "namespace": namespace},
            }
        ),
    )


def peers(kube: KubeEmulatorInfo, namespace: str) -> dict[str, Any]:
    """The operators alive in the namespace's peering object, by kopf's identity of each."""
    peering = json.loads(kube.kubectl("get", "-n", namespace, "kopfpeering", PEERING, "-o", "json").stdout)
    found: dict[str, Any] = peering.get("status") or {}
    return found


def reconciles(operator: OperatorProcess) -> float:
    return operator.metric(RECONCILES, {"kind": "UserAssignedIdentity"})


def test_replicas_of_one_peering_take_turns(
    start_operator: StartOperator,
    azure_emulator: AzureEmulatorInfo,
    ops_kube: KubeEmulatorInfo,
    resource_group: str,
    ops_namespace: str,
) -> None:
    create_peering(ops_kube, ops_namespace)
    env = operator_base_env(azure_emulator, ops_kube)
    common = ["-n", ops_namespace, f"--peering={PEERING}", f"--peering-lifetime={PEERING_LIFETIME_SECONDS}"]
    # No --priority: a replica that starts while another is alive ranks itself below it, and kopf (which
    # starts paused and resumes only without a live peer of higher priority) keeps it standing by.
    active = start_operator("active", env=env, args=common)
    active.wait_ready()
    eventually(
        lambda: len(peers(ops_kube, ops_namespace)) == 1, timeout=20, what="the active replica's entry"
    )
    (active_entry,) = peers(ops_kube, ops_namespace).values()
    standby = start_operator("standby", env=env, args=common)
    standby.wait_ready()

    def both_entries() -> dict[str, Any] | None:
        found = peers(ops_kube, ops_namespace)
        return found if len(found) == 2 else None

    entries = eventually(both_entries, timeout=20, what="the standby's entry")
    assert sorted(entry["priority"] for entry in entries.values())[1] == active_entry["priority"]
    assert "live peer(s)" in standby.log_text(), "the standby ranked itself below the active replica"
    assert "live peer(s)" not in active.log_text()

    first = [declare_identity(ops_kube, ops_namespace, resource_group) for _ in range(2)]
    wait_ready(ops_kube, ops_namespace, *first)
    assert reconciles(active) >= 2
    assert reconciles(standby) == 0, "the standby reconciled while the active replica was alive"

    active.kill()
    later = declare_identity(ops_kube, ops_namespace, resource_group)
    wait_ready(ops_kube, ops_namespace, later, timeout=PEERING_LIFETIME_SECONDS + 30)
    assert reconciles(standby) >= 1
    assert "Resuming operations after the pause" in standby.log_text()


def log_namespaces(operator: OperatorProcess) -> set[str]:
    """The namespaces of the objects the operator's JSON log lines concern."""
    found: set[str] = set()
    for line in operator.log_text().splitlines():
        if not line.startswith("{"):
            continue
        entry: dict[str, Any] = json.loads(line)
        namespace = (entry.get("object") or {}).get("namespace")
        if namespace:
            found.add(namespace)
    return found


def test_operators_split_the_cluster_by_namespace(
    start_operator: StartOperator,
    azure_emulator: AzureEmulatorInfo,
    ops_kube: KubeEmulatorInfo,
    resource_group: str,
) -> None:
    team_a, team_b = (f"team-{suffix}-{resource_group[-6:]}" for suffix in ("a", "b"))
    for namespace in (team_a, team_b):
        ops_kube.kubectl("create", "namespace", namespace)
        create_peering(ops_kube, namespace)
    env = operator_base_env(azure_emulator, ops_kube, IDENTITY_OPERATOR_LOG_FORMAT="json")
    operator_a = start_operator("team-a", env=env, args=["-n", team_a, f"--peering={PEERING}"])
    operator_b = start_operator("team-b", env=env, args=["-n", team_b, f"--peering={PEERING}"])
    operator_a.wait_ready()
    operator_b.wait_ready()

    in_a = declare_identity(ops_kube, team_a, resource_group)
    in_b = declare_identity(ops_kube, team_b, resource_group)
    wait_ready(ops_kube, team_a, in_a)
    wait_ready(ops_kube, team_b, in_b)

    assert log_namespaces(operator_a) == {team_a}
    assert log_namespaces(operator_b) == {team_b}
    assert reconciles(operator_a) >= 1
    assert reconciles(operator_b) >= 1
    # Neither paused for the other: their peering objects live in different namespaces.
    assert "Pausing" not in operator_a.log_text() + operator_b.log_text()
