"""Custom roles (RoleDefinition) and conditional role assignments end to end: the real operator process,
both emulators (custom roles and ABAC conditions as Azure has them) and real kubectl.

Covers: a conditional assignment created, then its condition changed in place (the same assignment, one
PUT); Azure's refusal of a malformed condition; a custom role created under its deterministic GUID, used by
an assignment through roleRef (which waits for it), its permissions changed in place, its deletion blocked
while the assignment uses it (naming it) and done once the assignment is gone; the operator killed between
the custom role's Azure write and its status write, leaving exactly one role of that name; a role
assignment Azure refuses for its limit (`RoleAssignmentLimitExceeded`).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from azure.mgmt.authorization import AuthorizationManagementClient

from e2e.helpers import identity_manifest, rg_scope
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

BLOB_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"  # Storage Blob Data Reader
LOGS_ONLY = (
    "((!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'})) OR "
    "(@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'logs'))"
)
AUDIT_ONLY = LOGS_ONLY.replace("'logs'", "'audit'")


def manifest(kind: str, name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "identityoperator.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def writes_to(azure: AzureEmulatorInfo, fragment: str, method: str = "PUT") -> int:
    return sum(
        count
        for key, count in azure.request_counts().items()
        if key.startswith(f"{method} ") and fragment.lower() in key.lower()
    )


def role_definition(name: str, scope: str, actions: list[str], **extra: Any) -> str:
    return manifest(
        "RoleDefinition",
        name,
        {
            "roleName": f"Reader of {name}",
            "description": "e2e custom role",
            "permissions": [{"actions": actions}],
            "assignableScopes": [scope],
            **extra,
        },
    )


def test_a_condition_changed_is_the_same_assignment_rewritten_in_place(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    authorization_client: AuthorizationManagementClient,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    spec = {
        "principal": {"identityRef": {"name": "app"}},
        "roleDefinitionId": BLOB_READER,
        "scope": scope,
        "condition": LOGS_ONLY,
        "conditionVersion": "2.0",
        "description": "reads the logs container only",
    }
    apply(kube_emulator, namespace, identity_manifest("app", resource_group))
    apply(kube_emulator, namespace, manifest("RoleAssignment", "logs", spec))
    name = wait_ready(kube_emulator, namespace, "ra/logs")["status"]["name"]
    assignment = authorization_client.role_assignments.get(scope, name)
    assert assignment.condition == LOGS_ONLY
    assert assignment.condition_version == "2.0"

    azure_emulator.reset_counts()
    apply(kube_emulator, namespace, manifest("RoleAssignment", "logs", {**spec, "condition": AUDIT_ONLY}))
    body = wait_object(
        kube_emulator,
        namespace,
        "ra/logs",
        lambda b: (
            b["status"].get("observedGeneration") == b["metadata"]["generation"]
            and ready_condition(b).get("status") == "True"
        ),
        what="the new condition applied",
    )
    assert body["status"]["name"] == name
    assert authorization_client.role_assignments.get(scope, name).condition == AUDIT_ONLY
    assert writes_to(azure_emulator, "/roleAssignments/") == 1
    assert writes_to(azure_emulator, "/roleAssignments/", "DELETE") == 0

    # A condition Azure cannot parse is Azure's refusal, said on the object; nothing changes in Azure.
    apply(kube_emulator, namespace, manifest("RoleAssignment", "logs", {**spec, "condition": "(@Resource["}))
    refused = wait_reason(kube_emulator, namespace, "ra/logs", "AzureRejected")
    assert "condition" in ready_condition(refused)["message"].lower()
    assert authorization_client.role_assignments.get(scope, name).condition == AUDIT_ONLY


def test_a_custom_role_made_used_changed_and_deleted_after_its_assignment(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    authorization_client: AuthorizationManagementClient,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    apply(kube_emulator, namespace, identity_manifest("app", resource_group))
    # Applied together: the assignment waits for the role, and is woken when it is Ready.
    apply(
        kube_emulator,
        namespace,
        role_definition("vault-reader", scope, ["Microsoft.KeyVault/vaults/read"])
        + "---\n"
        + manifest(
            "RoleAssignment",
            "custom",
            {
                "principal": {"identityRef": {"name": "app"}},
                "roleRef": {"name": "vault-reader"},
                "scope": scope,
            },
        ),
    )
    role = wait_ready(kube_emulator, namespace, "rd/vault-reader")
    guid = role["status"]["name"]
    granted = wait_ready(kube_emulator, namespace, "ra/custom")
    assert granted["status"]["roleDefinitionId"].lower().endswith(guid)
    assert granted["status"]["roleName"] == "Reader of vault-reader"
    definition = authorization_client.role_definitions.get(scope, guid)
    assert definition.role_type == "CustomRole"
    assert [p.actions for p in definition.permissions] == [["Microsoft.KeyVault/vaults/read"]]

    # Permissions changed: the same role (GUID), one PUT; the assignment is untouched.
    azure_emulator.reset_counts()
    apply(
        kube_emulator,
        namespace,
        role_definition(
            "vault-reader",
            scope,
            ["Microsoft.KeyVault/vaults/read", "Microsoft.KeyVault/vaults/secrets/read"],
        ),
    )
    wait_for(
        lambda: len(authorization_client.role_definitions.get(scope, guid).permissions[0].actions) == 2,
        timeout=20,
        what="the new permissions in Azure",
    )
    assert writes_to(azure_emulator, f"/roleDefinitions/{guid}") == 1
    assert writes_to(azure_emulator, "/roleAssignments/") == 0

    # Deleted while the assignment uses it: blocked, naming the assignment; deleted once it is gone.
    kube_emulator.kubectl("delete", "-n", namespace, "rd/vault-reader", "--wait=false")
    blocked = wait_reason(kube_emulator, namespace, "rd/vault-reader", "DeletionBlocked")
    assert granted["status"]["name"] in ready_condition(blocked)["message"]
    kube_emulator.kubectl("delete", "-n", namespace, "ra/custom", "--timeout=30s")
    wait_gone(kube_emulator, namespace, "rd/vault-reader", timeout=60)
    names = [
        d.role_name for d in authorization_client.role_definitions.list(scope, filter="type eq 'CustomRole'")
    ]
    assert "Reader of vault-reader" not in names
    assert any(e["reason"] == "Deleted" for e in events_for(kube_emulator, namespace, "vault-reader"))


def test_operator_killed_between_the_custom_roles_azure_write_and_its_status_write(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    authorization_client: AuthorizationManagementClient,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    # The emulator holds the PUT: the operator is killed after sending it, before any status write.
    azure_emulator.set_latency(3.0, path_regex="/roleDefinitions/", method="PUT")
    azure_emulator.reset_counts()
    try:
        apply(
            kube_emulator,
            namespace,
            role_definition("crashy", scope, ["Microsoft.Resources/subscriptions/resourceGroups/read"]),
        )
        wait_for(
            lambda: writes_to(azure_emulator, "/roleDefinitions/") > 0,
            timeout=15,
            interval=0.05,
            what="the PUT",
        )
        operator.kill()
    finally:
        azure_emulator.clear_latency()

    def written() -> bool:
        return any(
            d.role_name == "Reader of crashy"
            for d in authorization_client.role_definitions.list(scope, filter="type eq 'CustomRole'")
        )

    wait_for(written, timeout=10, what="the custom role in Azure")
    body = get_object(kube_emulator, namespace, "rd/crashy")
    assert body is not None
    assert not ready_condition(body), "the status write did not happen"
    operator.start()
    wait_ready(kube_emulator, namespace, "rd/crashy", timeout=40)
    same_name = [
        d
        for d in authorization_client.role_definitions.list(scope, filter="type eq 'CustomRole'")
        if d.role_name == "Reader of crashy"
    ]
    assert len(same_name) == 1


def test_azures_refusal_for_the_assignment_limit_is_said(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    authorization_client: AuthorizationManagementClient,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    existing = len(list(authorization_client.role_assignments.list_for_subscription()))
    apply(kube_emulator, namespace, identity_manifest("app", resource_group))
    wait_ready(kube_emulator, namespace, "uai/app")
    with azure_emulator.azure_limits(role_assignments=existing):
        apply(
            kube_emulator,
            namespace,
            manifest(
                "RoleAssignment",
                "one-too-many",
                {"principal": {"identityRef": {"name": "app"}}, "role": "Reader", "scope": scope},
            ),
        )
        body = wait_reason(kube_emulator, namespace, "ra/one-too-many", "RoleAssignmentLimitExceeded")
        assert "RoleAssignmentLimitExceeded" in ready_condition(body)["message"]
