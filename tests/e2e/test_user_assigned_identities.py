"""UserAssignedIdentity end to end: the real operator process, both emulators and real kubectl.

Covers apply → Ready with real IDs and the ConfigMap export (under the default or the named keys), a quiet
second pass (no ARM writes), tag updates, drift repaired (tags changed and the identity deleted in Azure),
adoption of an existing identity, bad input (names, missing resource group, immutable fields) reported as
conditions and Events, each deletion policy, and operator restarts (killed right after an apply, and while
an object is deleted).
"""

from __future__ import annotations

import json
import time

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from e2e import helpers
from e2e.helpers import arm_reads
from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo
from fixtures.operator import (
    SessionOperator,
    apply,
    events_for,
    get_object,
    ready_condition,
    wait_for,
    wait_gone,
    wait_object,
    wait_ready,
    wait_reason,
)

pytestmark = pytest.mark.e2e


def identity_manifest(name: str, resource_group: str, extra: str = "", tags: str = "team: payments") -> str:
    return helpers.identity_manifest(name, resource_group, extra, tags=tags)


def identity_names(msi_client: ManagedServiceIdentityClient, resource_group: str) -> list[str]:
    return sorted(i.name for i in msi_client.user_assigned_identities.list_by_resource_group(resource_group))


def test_apply_gives_real_ids_exports_them_and_a_second_pass_writes_nothing(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    extra = "  exportTo:\n    configMap:\n      name: payments-identity\n"
    apply(kube_emulator, namespace, identity_manifest("payments", resource_group, extra))
    body = wait_ready(kube_emulator, namespace, "uai/payments")

    identity = msi_client.user_assigned_identities.get(resource_group, "payments")
    status = body["status"]
    assert status["principalId"] == identity.principal_id
    assert status["clientId"] == identity.client_id
    assert status["tenantId"] == identity.tenant_id == azure_emulator.tenant_id
    assert status["id"].lower() == identity.id.lower()
    assert status["adopted"] is False
    assert status["observedGeneration"] == body["metadata"]["generation"]
    assert identity.tags == helpers.marked({"team": "payments"}, kube_emulator, namespace, "payments")
    assert body["metadata"]["finalizers"] == ["identityoperator.dev/finalizer"]
    assert not [key for key in body["metadata"].get("annotations", {}) if "kopf.zalando.org" in key]

    config_map = wait_for(
        lambda: get_object(kube_emulator, namespace, "configmap/payments-identity"),
        timeout=10,
        what="the exported ConfigMap",
    )
    assert config_map["data"] == {
        "clientId": identity.client_id,
        "principalId": identity.principal_id,
        "tenantId": identity.tenant_id,
        "resourceId": status["id"],
    }
    [owner] = config_map["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "UserAssignedIdentity",
        "payments",
        body["metadata"]["uid"],
    )

    # A drift check later nothing was written to Azure for this resource group, nor to the object.
    writes, reads = azure_emulator.arm_write_count(resource_group), arm_reads(azure_emulator, resource_group)
    time.sleep(1.5 * operator.sync_interval)  # every object is checked at least once
    assert arm_reads(azure_emulator, resource_group) > reads, "the drift check ran"
    assert azure_emulator.arm_write_count(resource_group) == writes
    after = get_object(kube_emulator, namespace, "uai/payments")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"]

    events = events_for(kube_emulator, namespace, "payments")
    # One Event for the one change in Azure; becoming Ready by it needs no second one.
    assert [(e["type"], e["reason"]) for e in events] == [("Normal", "Created")]
    assert events[0]["source"]["component"] == "azure-identity-operator"

    printed = kube_emulator.kubectl("get", "-n", namespace, "uai").stdout
    assert identity.client_id in printed
    assert "Succeeded" in printed


def test_named_keys_export_exactly_those_ids_and_a_changed_key_is_added(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    keys = "      keys:\n        clientId: AZURE_CLIENT_ID\n        tenantId: AZURE_TENANT_ID\n"
    export = "  exportTo:\n    configMap:\n      name: invoicing-env\n" + keys
    apply(kube_emulator, namespace, identity_manifest("invoicing", resource_group, export))
    status = wait_ready(kube_emulator, namespace, "uai/invoicing")["status"]
    identity = msi_client.user_assigned_identities.get(resource_group, "invoicing")
    assert status["clientId"] == identity.client_id
    config_map = wait_for(
        lambda: get_object(kube_emulator, namespace, "configmap/invoicing-env"),
        timeout=10,
        what="the exported ConfigMap",
    )
    # Exactly what a Deployment's `envFrom: [{configMapRef: {name: invoicing-env}}]` needs, nothing else.
    assert config_map["data"] == {
        "AZURE_CLIENT_ID": identity.client_id,
        "AZURE_TENANT_ID": identity.tenant_id,
    }

    # Another key for the client ID and a new ID: both appear; the keys exported before stay.
    keys = "      keys:\n        clientId: CLIENT_ID\n        resourceId: AZURE_RESOURCE_ID\n"
    export = "  exportTo:\n    configMap:\n      name: invoicing-env\n" + keys
    apply(kube_emulator, namespace, identity_manifest("invoicing", resource_group, export))
    config_map = wait_object(
        kube_emulator,
        namespace,
        "configmap/invoicing-env",
        lambda cm: "AZURE_RESOURCE_ID" in cm["data"],
        timeout=10,
        what="the newly named keys in the ConfigMap",
    )
    assert config_map["data"] == {
        "AZURE_CLIENT_ID": identity.client_id,
        "AZURE_TENANT_ID": identity.tenant_id,
        "CLIENT_ID": identity.client_id,
        "AZURE_RESOURCE_ID": status["id"],
    }
    assert config_map["data"]["AZURE_RESOURCE_ID"].lower() == identity.id.lower()

    # Drift checks find the ConfigMap current and leave it unwritten.
    time.sleep(1.5 * operator.sync_interval)
    after = get_object(kube_emulator, namespace, "configmap/invoicing-env")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == config_map["metadata"]["resourceVersion"]


def test_tag_update_and_drift_are_repaired(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    export = "  exportTo:\n    configMap:\n      name: orders-identity\n"
    apply(kube_emulator, namespace, identity_manifest("orders", resource_group, export))
    first = wait_ready(kube_emulator, namespace, "uai/orders")["status"]
    new_tags = helpers.marked({"team": "orders", "env": "prod"}, kube_emulator, namespace, "orders")

    apply(
        kube_emulator,
        namespace,
        identity_manifest("orders", resource_group, export, tags="team: orders, env: prod"),
    )
    wait_for(
        lambda: msi_client.user_assigned_identities.get(resource_group, "orders").tags == new_tags,
        timeout=15,
        what="the new tags in Azure",
    )
    body = wait_object(
        kube_emulator,
        namespace,
        "uai/orders",
        lambda b: bool(b["status"].get("observedGeneration") == b["metadata"]["generation"]),
        timeout=10,
        what="observedGeneration to follow the spec",
    )
    assert body["status"]["principalId"] == first["principalId"]

    # Tags changed behind the operator's back (the ownership marker too) are put back by the drift check.
    msi_client.user_assigned_identities.update(resource_group, "orders", {"tags": {"team": "intruder"}})
    wait_for(
        lambda: msi_client.user_assigned_identities.get(resource_group, "orders").tags == new_tags,
        timeout=4 * operator.sync_interval,
        what="the drift check to restore the tags",
    )

    # An identity deleted behind the operator's back is created again and its new IDs reported.
    msi_client.user_assigned_identities.delete(resource_group, "orders")
    recreated = wait_object(
        kube_emulator,
        namespace,
        "uai/orders",
        lambda b: b["status"].get("principalId") not in (None, first["principalId"]),
        timeout=4 * operator.sync_interval,
        what="the identity to be re-created with a new principal",
    )
    identity = msi_client.user_assigned_identities.get(resource_group, "orders")
    assert recreated["status"]["principalId"] == identity.principal_id
    assert recreated["status"]["clientId"] == identity.client_id
    assert ready_condition(recreated)["status"] == "True"
    assert identity_names(msi_client, resource_group) == ["orders"]
    # The exported IDs follow the new identity.
    wait_object(
        kube_emulator,
        namespace,
        "configmap/orders-identity",
        lambda cm: bool(cm["data"]["principalId"] == identity.principal_id),
        timeout=10,
        what="the ConfigMap to carry the new principal",
    )


def test_an_existing_identity_is_adopted_with_its_ids(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    existing = msi_client.user_assigned_identities.create_or_update(
        resource_group, "legacy", {"location": "westeurope", "tags": {"owner": "portal"}}
    )
    apply(kube_emulator, namespace, identity_manifest("legacy", resource_group))
    status = wait_ready(kube_emulator, namespace, "uai/legacy")["status"]
    assert status["adopted"] is True
    assert status["principalId"] == existing.principal_id
    assert status["clientId"] == existing.client_id
    # Adopted, it carries exactly the spec's tags and the marker naming its new owner.
    assert msi_client.user_assigned_identities.get(resource_group, "legacy").tags == helpers.marked(
        {"team": "payments"}, kube_emulator, namespace, "legacy"
    )
    assert identity_names(msi_client, resource_group) == ["legacy"]


def test_a_refused_export_is_invalid_spec_and_keeps_the_ids_in_status(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    # The user names a ConfigMap the API server will not change (immutable, with other data): a 422 on an
    # object the spec names is the spec's to fix, not an operator error retried forever.
    kube_emulator.kubectl(
        "apply", "-n", namespace, "-f", "-",
        input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen-ids\nimmutable: true\n"
        "data:\n  clientId: someone-else\n",
    )  # fmt: skip
    refused = "  exportTo:\n    configMap:\n      name: frozen-ids\n"
    apply(kube_emulator, namespace, identity_manifest("billing", resource_group, refused))
    body = wait_reason(kube_emulator, namespace, "uai/billing", "InvalidSpec")
    identity = msi_client.user_assigned_identities.get(resource_group, "billing")
    message = ready_condition(body)["message"]
    assert "spec.exportTo.configMap.name 'frozen-ids'" in message
    assert "immutable" in message
    assert body["status"]["id"].lower() == identity.id.lower()
    assert body["status"]["principalId"] == identity.principal_id
    assert body["status"]["adopted"] is False
    assert any(
        (e["type"], e["reason"]) == ("Warning", "InvalidSpec")
        for e in events_for(kube_emulator, namespace, "billing")
    )

    fixed = "  exportTo:\n    configMap:\n      name: billing-ids\n"
    apply(kube_emulator, namespace, identity_manifest("billing", resource_group, fixed))
    body = wait_ready(kube_emulator, namespace, "uai/billing")
    assert body["status"]["adopted"] is False, "created by this object, not adopted"
    config_map = get_object(kube_emulator, namespace, "configmap/billing-ids")
    assert config_map is not None
    assert config_map["data"]["principalId"] == identity.principal_id


def test_bad_input_is_explained_in_the_condition_and_an_event(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    namespace: str,
    resource_group: str,
    resource_client: ResourceManagementClient,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    # A Kubernetes name Azure does not accept as an identity name.
    apply(kube_emulator, namespace, identity_manifest("team.payments", resource_group))
    body = wait_reason(kube_emulator, namespace, "uai/team.payments", "InvalidSpec")
    assert "spec.azureName" in ready_condition(body)["message"]
    assert [e["reason"] for e in events_for(kube_emulator, namespace, "team.payments")] == ["InvalidSpec"]

    # A resource group that does not exist: reported, then picked up by the drift check once it exists.
    missing_group = f"{resource_group}-later"
    apply(kube_emulator, namespace, identity_manifest("early", missing_group))
    body = wait_reason(kube_emulator, namespace, "uai/early", "ResourceGroupNotFound")
    assert missing_group in ready_condition(body)["message"]
    [event] = events_for(kube_emulator, namespace, "early")
    assert (event["type"], event["reason"]) == ("Warning", "ResourceGroupNotFound")
    resource_client.resource_groups.create_or_update(missing_group, {"location": "westeurope"})
    wait_ready(kube_emulator, namespace, "uai/early", timeout=4 * operator.sync_interval)
    assert identity_names(msi_client, missing_group) == ["early"]

    # A subscription Azure does not know.
    elsewhere = "  subscriptionId: 0b1f6471-1bf0-4dda-aec3-111122223333\n"
    apply(kube_emulator, namespace, identity_manifest("elsewhere", resource_group, elsewhere))
    body = wait_object(
        kube_emulator,
        namespace,
        "uai/elsewhere",
        lambda b: ready_condition(b).get("status") == "False",
        what="the unknown subscription to be reported",
    )
    condition = ready_condition(body)
    assert condition["reason"] in ("SubscriptionNotFound", "AuthorizationFailed"), condition
    assert "0b1f6471-1bf0-4dda-aec3-111122223333" in condition["message"]
    assert condition["reason"] in [e["reason"] for e in events_for(kube_emulator, namespace, "elsewhere")]

    # Immutable fields are refused at admission, with the rule's message.
    for patch, needle in [
        ({"spec": {"location": "eastus"}}, "location is immutable"),
        ({"spec": {"resourceGroup": "elsewhere"}}, "resourceGroup is immutable"),
        ({"spec": {"azureName": "renamed"}}, "azureName is immutable"),
    ]:
        refused = kube_emulator.kubectl(
            "patch", "-n", namespace, "uai/early", "--type=merge", "-p", json.dumps(patch), check=False
        )
        assert refused.returncode != 0
        assert needle in refused.stderr
    # A bad azureName never reaches the operator either.
    refused = kube_emulator.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=identity_manifest("bad-azure-name", resource_group, "  azureName: 'no spaces allowed'\n"),
        check=False,
    )
    assert refused.returncode != 0


def test_deletion_policies(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    apply(kube_emulator, namespace, identity_manifest("doomed", resource_group))
    apply(kube_emulator, namespace, identity_manifest("kept", resource_group, "  deletionPolicy: Orphan\n"))
    wait_ready(kube_emulator, namespace, "uai/doomed")
    wait_ready(kube_emulator, namespace, "uai/kept")
    kube_emulator.kubectl("delete", "-n", namespace, "uai/doomed", "uai/kept", "--wait=false")
    wait_gone(kube_emulator, namespace, "uai/doomed")
    wait_gone(kube_emulator, namespace, "uai/kept")
    with pytest.raises(ResourceNotFoundError):
        msi_client.user_assigned_identities.get(resource_group, "doomed")
    assert identity_names(msi_client, resource_group) == ["kept"]


def test_operator_restarts_lose_and_duplicate_nothing(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    # Killed right after the apply: whatever it had done, the next process finishes the job once.
    apply(kube_emulator, namespace, identity_manifest("restarted", resource_group))
    time.sleep(0.3)
    operator.kill()
    operator.start()
    status = wait_ready(kube_emulator, namespace, "uai/restarted")["status"]
    assert identity_names(msi_client, resource_group) == ["restarted"]
    assert (
        status["principalId"]
        == msi_client.user_assigned_identities.get(resource_group, "restarted").principal_id
    )

    # Deleted while no operator runs: the finalizer holds the object until the next process cleans up.
    operator.kill()
    kube_emulator.kubectl("delete", "-n", namespace, "uai/restarted", "--wait=false")
    time.sleep(0.5)
    assert get_object(kube_emulator, namespace, "uai/restarted") is not None
    assert identity_names(msi_client, resource_group) == ["restarted"]
    operator.start()
    wait_gone(kube_emulator, namespace, "uai/restarted")
    assert identity_names(msi_client, resource_group) == []


def test_a_blocked_deletion_explains_itself_and_finishes_when_azure_allows(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    apply(kube_emulator, namespace, identity_manifest("stuck", resource_group))
    wait_ready(kube_emulator, namespace, "uai/stuck")
    azure_emulator.inject_fault(
        path_regex=f"{resource_group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/stuck$",
        method="DELETE",
        status=403,
        code="AuthorizationFailed",
        message="The client does not have authorization to perform action "
        "'Microsoft.ManagedIdentity/userAssignedIdentities/delete'.",
    )
    kube_emulator.kubectl("delete", "-n", namespace, "uai/stuck", "--wait=false")
    body = wait_reason(kube_emulator, namespace, "uai/stuck", "DeletionBlocked")
    message = ready_condition(body)["message"]
    assert "userAssignedIdentities/delete" in message
    assert "Orphan" in message
    assert body["metadata"]["finalizers"] == ["identityoperator.dev/finalizer"]
    assert identity_names(msi_client, resource_group) == ["stuck"]
    # The fault was a one-off: the retry (after its backoff) deletes the identity and releases the object.
    wait_gone(kube_emulator, namespace, "uai/stuck", timeout=30)
    assert identity_names(msi_client, resource_group) == []
