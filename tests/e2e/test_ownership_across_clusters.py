"""Ownership markers end to end: two clusters, each its own Kubernetes API emulator and its own operator
process (cluster IDs `east` and `west`, each signed in to Azure as a service principal of its own), sharing
one Azure emulator, with objects of the same namespace and name declaring the same Azure resource.

Covers, for a user-assigned identity and for a role assignment: the first cluster creates and marks it;
the second reports `OwnedElsewhere` with a Warning Event and sends no write at all over several drift
intervals (the emulator counts requests by calling principal), while the marker, the tags and the
description stay the first's and the first stays Ready (no tug-of-war); deleting the second's object
releases it and leaves the resource in Azure; with `identityoperator.dev/adopt: "true"` the second takes
it over and the first turns `OwnedElsewhere` in turn, writing nothing.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient

from e2e import helpers
from fixtures.azure_emulator import AzureEmulatorInfo, ServicePrincipal
from fixtures.kube_emulator import KubeEmulatorInfo, KubeEmulatorProcess, start_kube_emulator
from fixtures.operator import (
    OperatorProcess,
    apply,
    apply_crds,
    events_for,
    get_object,
    operator_environment,
    ready_condition,
    wait_for,
    wait_gone,
    wait_object,
    wait_ready,
    wait_reason,
)

pytestmark = pytest.mark.e2e

SYNC_INTERVAL = 1.5
"""Both operators' drift interval: "several intervals" pass in seconds."""
QUIET_PERIOD = 4 * SYNC_INTERVAL
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
ADOPT = "identityoperator.dev/adopt"


@dataclasses.dataclass
class Cluster:
    """One cluster: its API server, its operator, and the Azure principal the operator signs in as."""

    name: str
    kube: KubeEmulatorInfo
    operator: OperatorProcess
    principal: ServicePrincipal

    def writes(self, azure: AzureEmulatorInfo) -> dict[str, int]:
        """The ARM writes this cluster's operator sent since the emulator's counts were reset."""
        return {
            key: count
            for key, count in azure.caller_counts(self.principal.object_id).items()
            if key.split(" ")[0] in ("PUT", "PATCH", "POST", "DELETE")
        }


@pytest.fixture(scope="module")
def clusters(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Cluster, Cluster]]:
    subscription = f"/subscriptions/{azure_emulator.subscription_id}"
    owner_role = f"{subscription}/providers/Microsoft.Authorization/roleDefinitions/{OWNER}"
    started: list[tuple[KubeEmulatorProcess, OperatorProcess]] = []
    grants: list[str] = []
    built: list[Cluster] = []
    try:
        for name in ("east", "west"):
            principal = azure_emulator.create_service_principal(f"operator-{name}")
            grant = str(uuid.uuid4())
            authorization_client.role_assignments.create(
                subscription,
                grant,
                {
                    "role_definition_id": owner_role,
                    "principal_id": principal.object_id,
                    "principal_type": "ServicePrincipal",
                },
            )
            grants.append(grant)
            directory = tmp_path_factory.mktemp(f"cluster-{name}")
            kube = start_kube_emulator(directory / "kube", "--bookmark-interval", "1")
            apply_crds(kube.info)
            env = operator_env(azure_emulator, kube.info, name, principal)
            operator = OperatorProcess(env=env, log_path=directory / "operator.log", args=("--verbose",))
            started.append((kube, operator))
            operator.start()
            built.append(Cluster(name, kube.info, operator, principal))
        yield built[0], built[1]
    finally:
        for kube, operator in started:
            operator.kill()
            kube.stop()
        for grant in grants:
            authorization_client.role_assignments.delete(subscription, grant)


def operator_env(
    azure: AzureEmulatorInfo, kube: KubeEmulatorInfo, cluster_id: str, principal: ServicePrincipal
) -> dict[str, str]:
    return operator_environment(
        azure,
        kube,
        sync_interval=SYNC_INTERVAL,
        extra={
            "IDENTITY_OPERATOR_CLUSTER_ID": cluster_id,
            "AZURE_CLIENT_ID": principal.client_id,
            "AZURE_CLIENT_SECRET": principal.client_secret,
        },
    )


@pytest.fixture
def shared_namespace(clusters: tuple[Cluster, Cluster]) -> str:
    """The same namespace in both clusters, so the objects there have the same namespace and name."""
    name = f"team-{uuid.uuid4().hex[:8]}"
    for cluster in clusters:
        cluster.kube.kubectl("create", "namespace", name)
    return name


@pytest.fixture(autouse=True)
def operator_logs(clusters: tuple[Cluster, Cluster], request: pytest.FixtureRequest) -> Iterator[None]:
    """On a failure, both operators' log tails."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        for cluster in clusters:
            print(f"\n----- operator {cluster.name} (tail) -----\n{cluster.operator.log_tail(60)}")


def warnings_of(kube: KubeEmulatorInfo, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in events_for(kube, namespace, name)
        if e.get("type") == "Warning" and e.get("reason") == reason
    ]


def annotate_adopt(kube: KubeEmulatorInfo, namespace: str, resource: str) -> None:
    kube.kubectl("annotate", "-n", namespace, resource, f"{ADOPT}=true", "--overwrite")


def identity_manifest(resource_group: str, team: str) -> str:
    return helpers.identity_manifest("payments", resource_group, tags=f"team: {team}")


def test_an_identity_marked_by_one_cluster_is_never_written_by_the_other_until_adopted(
    clusters: tuple[Cluster, Cluster],
    azure_emulator: AzureEmulatorInfo,
    msi_client: ManagedServiceIdentityClient,
    shared_namespace: str,
    resource_group: str,
) -> None:
    east, west = clusters
    ns = shared_namespace

    def tags() -> dict[str, str]:
        return dict(msi_client.user_assigned_identities.get(resource_group, "payments").tags or {})

    # East creates the identity and marks it as its own.
    apply(east.kube, ns, identity_manifest(resource_group, "east"))
    created = wait_ready(east.kube, ns, "uai/payments")
    assert tags() == {"team": "east", helpers.OWNER_TAG: f"east/{ns}/payments"}

    # West declares the same identity: OwnedElsewhere, a Warning Event, and not one write.
    azure_emulator.reset_counts()
    apply(west.kube, ns, identity_manifest(resource_group, "west"))
    refused = wait_reason(west.kube, ns, "uai/payments", "OwnedElsewhere")
    message = ready_condition(refused)["message"]
    assert "cluster east" in message
    assert f"{ns}/payments" in message
    assert ADOPT in message
    assert "principalId" not in refused["status"], "the other owner's IDs are not this object's"
    wait_for(
        lambda: warnings_of(west.kube, ns, "payments", "OwnedElsewhere"),
        timeout=10,
        what="a Warning Event OwnedElsewhere",
    )

    # Several drift intervals later: still nobody wrote, the marker and tags are east's, east is Ready.
    time.sleep(QUIET_PERIOD)
    assert west.writes(azure_emulator) == {}
    assert azure_emulator.caller_counts(west.principal.object_id), "west did look (GETs), at every interval"
    assert azure_emulator.arm_write_count("/userAssignedIdentities/payments") == 0, "no tag tug-of-war"
    assert tags() == {"team": "east", helpers.OWNER_TAG: f"east/{ns}/payments"}
    still = get_object(east.kube, ns, "uai/payments")
    assert ready_condition(still)["status"] == "True"
    assert ready_condition(get_object(west.kube, ns, "uai/payments"))["reason"] == "OwnedElsewhere"

    # Deleting west's object releases it and leaves the identity in Azure.
    west.kube.kubectl("delete", "-n", ns, "uai/payments", "--wait=false")
    wait_gone(west.kube, ns, "uai/payments", timeout=15)
    assert west.writes(azure_emulator) == {}
    assert tags()[helpers.OWNER_TAG] == f"east/{ns}/payments"
    released = [
        e["message"] for e in events_for(west.kube, ns, "payments") if "left in Azure" in e["message"]
    ]
    assert released, "the release says the identity stays in Azure"

    # With the adopt annotation, west takes it over (the same identity) and east turns OwnedElsewhere.
    apply(west.kube, ns, identity_manifest(resource_group, "west"))
    annotate_adopt(west.kube, ns, "uai/payments")
    adopted = wait_ready(west.kube, ns, "uai/payments", timeout=20)
    assert adopted["status"]["adopted"] is True
    assert adopted["status"]["principalId"] == created["status"]["principalId"]
    assert tags() == {"team": "west", helpers.OWNER_TAG: f"west/{ns}/payments"}
    wait_reason(east.kube, ns, "uai/payments", "OwnedElsewhere", timeout=10 * SYNC_INTERVAL)
    azure_emulator.reset_counts()
    time.sleep(QUIET_PERIOD)
    assert east.writes(azure_emulator) == {}
    assert west.writes(azure_emulator) == {}
    assert tags()[helpers.OWNER_TAG] == f"west/{ns}/payments"

    # East lets go without deleting; west, the owner now, deletes it.
    east.kube.kubectl("delete", "-n", ns, "uai/payments", "--wait=false")
    wait_gone(east.kube, ns, "uai/payments", timeout=15)
    assert east.writes(azure_emulator) == {}
    west.kube.kubectl("delete", "-n", ns, "uai/payments", "--wait=false")
    wait_gone(west.kube, ns, "uai/payments", timeout=15)
    with pytest.raises(ResourceNotFoundError):
        msi_client.user_assigned_identities.get(resource_group, "payments")


def test_a_role_assignment_marked_by_one_cluster_is_never_written_by_the_other_until_adopted(
    clusters: tuple[Cluster, Cluster],
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    shared_namespace: str,
    resource_group: str,
) -> None:
    east, west = clusters
    ns = shared_namespace
    scope = f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
    principal = azure_emulator.create_service_principal(f"app-{uuid.uuid4().hex[:6]}").object_id
    manifest = json.dumps(
        {
            "apiVersion": "identityoperator.dev/v1alpha1",
            "kind": "RoleAssignment",
            "metadata": {"name": "reader"},
            "spec": {
                "principal": {"principalId": principal, "principalType": "ServicePrincipal"},
                "roleDefinitionId": READER,
                "scope": scope,
                "description": "lets the app read its group",
            },
        }
    )

    def description(name: str) -> str:
        return str(authorization_client.role_assignments.get(scope, name).description)

    apply(east.kube, ns, manifest)
    name = wait_ready(east.kube, ns, "roleassignment/reader")["status"]["name"]
    east_description = helpers.marked_description("lets the app read its group", f"east/{ns}/reader")
    assert description(name) == east_description

    azure_emulator.reset_counts()
    apply(west.kube, ns, manifest)
    refused = wait_reason(west.kube, ns, "roleassignment/reader", "OwnedElsewhere")
    assert "cluster east" in ready_condition(refused)["message"]
    wait_for(
        lambda: warnings_of(west.kube, ns, "reader", "OwnedElsewhere"), timeout=10, what="a Warning Event"
    )
    time.sleep(QUIET_PERIOD)
    assert west.writes(azure_emulator) == {}
    # Nor does east write it (no tug-of-war); writes elsewhere in the shared emulator are other tests'.
    assert azure_emulator.arm_write_count(f"/roleAssignments/{name}") == 0
    assert description(name) == east_description
    assert ready_condition(get_object(east.kube, ns, "roleassignment/reader"))["status"] == "True"

    west.kube.kubectl("delete", "-n", ns, "roleassignment/reader", "--wait=false")
    wait_gone(west.kube, ns, "roleassignment/reader", timeout=15)
    assert west.writes(azure_emulator) == {}
    assert description(name) == east_description, "left in Azure"

    apply(west.kube, ns, manifest)
    annotate_adopt(west.kube, ns, "roleassignment/reader")
    wait_object(
        west.kube,
        ns,
        "roleassignment/reader",
        lambda body: helpers.is_ready(body) and body["status"].get("adopted") is True,
        timeout=20,
        what="west to take the assignment over",
    )
    assert description(name) == helpers.marked_description("lets the app read its group", f"west/{ns}/reader")
    wait_reason(east.kube, ns, "roleassignment/reader", "OwnedElsewhere", timeout=10 * SYNC_INTERVAL)

    # East lets go without deleting; west, the owner now, deletes the assignment.
    east.kube.kubectl("delete", "-n", ns, "roleassignment/reader", "--wait=false")
    wait_gone(east.kube, ns, "roleassignment/reader", timeout=15)
    assert description(name).endswith(f"west/{ns}/reader]")
    west.kube.kubectl("delete", "-n", ns, "roleassignment/reader", "--wait=false")
    wait_gone(west.kube, ns, "roleassignment/reader", timeout=15)
    with pytest.raises(ResourceNotFoundError):
        authorization_client.role_assignments.get(scope, name)
