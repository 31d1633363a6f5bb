"""RoleAssignment end to end: the real operator process, both emulators (principal replication delay on
where it matters) and real kubectl.

Covers: an identity and its assignment applied together become Ready (and a drift pass writes nothing);
the recreated identity's new principal is followed; role by name and by ID; scopes at subscription,
resource group and resource; a pre-existing grant adopted; a principal change replacing the assignment;
drift (deleted, edited) repaired; each deletion policy; a deletion Azure refuses, released by the
force-delete annotation; errors that need the user (unknown role, invalid scope, missing resource group,
AuthorizationFailed, bad principal) with their Events; PrincipalNotFound retried for raw IDs; the operator
killed between the Azure write and the status write, then restarted, leaving exactly one assignment.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient

from azure_identity_operator.arm import ids
from e2e import helpers
from e2e.helpers import identity_manifest, is_ready, rg_scope
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

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_API_VERSION = "2023-07-01"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# --- helpers -------------------------------------------------------------------------------------------


def role_assignment(
    name: str, scope: str, *, principal: str, role: str = "role: Reader", extra: str = ""
) -> str:
    """A RoleAssignment manifest; `principal` and `role` are indented YAML lines of the spec."""
    return (
        "apiVersion: identityoperator.dev/v1alpha1\n"
        "kind: RoleAssignment\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n"
        f"  principal:\n{principal}"
        f"  {role}\n"
        f"  scope: {scope}\n"
        f"{extra}"
    )


def identity_principal(name: str) -> str:
    return f"    identityRef:\n      name: {name}\n"


def raw_principal(principal_id: str, principal_type: str | None = "ServicePrincipal") -> str:
    line = f"    principalId: {principal_id}\n"
    return line + (f"    principalType: {principal_type}\n" if principal_type else "")


def assignments_of(client: AuthorizationManagementClient, scope: str, principal_id: str) -> list[Any]:
    """The assignments of `principal_id` exactly at `scope`."""
    return [
        a
        for a in client.role_assignments.list_for_scope(scope, filter=f"principalId eq '{principal_id}'")
        if ids.same_id(a.scope, scope)
    ]


def get_assignment(client: AuthorizationManagementClient, scope: str, name: str) -> Any | None:
    try:
        return client.role_assignments.get(scope, name)
    except ResourceNotFoundError:
        return None


def new_principal(azure: AzureEmulatorInfo) -> str:
    return azure.create_service_principal(f"app-{uuid.uuid4().hex[:6]}").object_id


def assignment_writes(azure: AzureEmulatorInfo, scope: str) -> int:
    return azure.arm_write_count(f"{scope}/providers/Microsoft.Authorization/roleAssignments/")


def assignment_reads(azure: AzureEmulatorInfo, scope: str) -> int:
    """Reads of the assignments at `scope`: a GET of one, or the list of the subscription's assignments
    that drift checks read."""
    one = f"GET {scope}/providers/Microsoft.Authorization/roleAssignments/".lower()
    subscription = "/".join(scope.split("/")[:3])
    every = f"GET {subscription}/providers/Microsoft.Authorization/roleAssignments".lower()
    return sum(
        count
        for key, count in azure.request_counts().items()
        if key.lower().startswith(one) or key.lower() == every
    )


def assert_next_pass_writes_nothing(azure: AzureEmulatorInfo, operator: SessionOperator, scope: str) -> None:
    """Wait for a drift pass over the assignments at `scope` (a read) and check that it wrote nothing."""
    azure.reset_counts()
    wait_for(
        lambda: assignment_reads(azure, scope) > 0, timeout=operator.sync_interval * 3, what="a drift pass"
    )
    time.sleep(0.5)  # let the pass that did the GET finish
    assert assignment_writes(azure, scope) == 0, azure.request_counts()


def reason_event(kube: KubeEmulatorInfo, namespace: str, name: str, reason: str) -> dict[str, Any] | None:
    return next((e for e in events_for(kube, namespace, name) if e.get("reason") == reason), None)


@pytest.fixture
def principal_delay(azure_emulator: AzureEmulatorInfo) -> Iterator[float]:
    """Directory replication delay on, as in Azure right after a principal is created; restored after."""
    delay = 4.0
    azure_emulator.set_principal_delay(delay)
    try:
        yield delay
    finally:
        azure_emulator.set_principal_delay(0)


# --- tests ---------------------------------------------------------------------------------------------


def test_identity_and_assignment_applied_together_become_ready_and_follow_a_recreated_identity(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    msi_client: ManagedServiceIdentityClient,
    namespace: str,
    resource_group: str,
    principal_delay: float,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    apply(
        kube_emulator,
        namespace,
        # The assignment comes first: it must wait for an identity that does not exist yet.
        role_assignment("app-reader", scope, principal=identity_principal("app"))
        + "---\n"
        + identity_manifest("app", resource_group),
    )
    body = wait_ready(kube_emulator, namespace, "roleassignment/app-reader", timeout=30)
    uai = wait_ready(kube_emulator, namespace, "uai/app")
    principal_id = uai["status"]["principalId"]
    status = body["status"]
    assert status["principalId"] == principal_id
    assert status["principalType"] == "ServicePrincipal"
    assert status["roleName"] == "Reader"
    assert status["name"] == ids.role_assignment_name(
        scope=scope, principal_id=principal_id, role_definition_id=status["roleDefinitionId"]
    )
    (assignment,) = assignments_of(authorization_client, scope, principal_id)
    assert assignment.name == status["name"]
    assert assignment.principal_type == "ServicePrincipal"
    table = kube_emulator.kubectl("get", "-n", namespace, "roleassignments").stdout
    assert "Reader" in table
    assert "Succeeded" in table
    assert_next_pass_writes_nothing(azure_emulator, operator, scope)

    # The identity is deleted in Azure behind the operator's back: it is re-created with a new principal,
    # and the assignment follows it (new one created, the old principal's removed).
    msi_client.user_assigned_identities.delete(resource_group, "app")

    moved = wait_object(
        kube_emulator,
        namespace,
        "roleassignment/app-reader",
        lambda current: (
            current["status"].get("principalId") not in (None, principal_id) and is_ready(current)
        ),
        timeout=30,
        what="the assignment to follow the new principal",
    )
    new_principal_id = moved["status"]["principalId"]
    assert assignments_of(authorization_client, scope, principal_id) == []
    (replacement,) = assignments_of(authorization_client, scope, new_principal_id)
    assert replacement.name == moved["status"]["name"]


def test_role_by_id_and_by_name_at_subscription_and_resource_scopes(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    namespace: str,
    resource_group: str,
) -> None:
    principal_id = new_principal(azure_emulator)
    subscription_scope = f"/subscriptions/{azure_emulator.subscription_id}"
    vault_scope = (
        f"{rg_scope(azure_emulator, resource_group)}/providers/Microsoft.KeyVault/vaults/kv-{namespace[-6:]}"
    )
    created = azure_emulator.raw(
        "PUT",
        f"{vault_scope}?api-version={KEY_VAULT_API_VERSION}",
        {
            "location": "westeurope",
            "properties": {"tenantId": azure_emulator.tenant_id, "sku": {"family": "A", "name": "standard"}},
        },
    )
    assert created.status in (200, 201), created.body
    apply(
        kube_emulator,
        namespace,
        role_assignment(
            "sub-reader",
            subscription_scope,
            principal=raw_principal(principal_id),
            role=f"roleDefinitionId: {READER}",
        )
        + "---\n"
        + role_assignment(
            "vault-secrets",
            vault_scope,
            principal=raw_principal(principal_id),
            role="role: key vault secrets user",
        ),
    )
    by_id = wait_ready(kube_emulator, namespace, "roleassignment/sub-reader")
    by_name = wait_ready(kube_emulator, namespace, "roleassignment/vault-secrets")
    assert by_id["status"]["roleName"] == "Reader"
    assert by_id["status"]["roleDefinitionId"].endswith(READER)
    assert by_name["status"]["roleName"] == "Key Vault Secrets User"
    assert by_name["status"]["roleDefinitionId"].endswith(KEY_VAULT_SECRETS_USER)
    (at_subscription,) = assignments_of(authorization_client, subscription_scope, principal_id)
    (at_vault,) = assignments_of(authorization_client, vault_scope, principal_id)
    assert at_subscription.role_definition_id.endswith(READER)
    assert at_vault.role_definition_id.endswith(KEY_VAULT_SECRETS_USER)

    # The vault (the scope) is deleted in Azure: deleting the object is done at once, not stuck.
    gone = azure_emulator.raw("DELETE", f"{vault_scope}?api-version={KEY_VAULT_API_VERSION}")
    assert gone.status in (200, 204), gone.body
    kube_emulator.kubectl("delete", "-n", namespace, "roleassignment/vault-secrets", "--timeout=30s")
    kube_emulator.kubectl("delete", "-n", namespace, "roleassignment/sub-reader", "--timeout=30s")
    assert assignments_of(authorization_client, subscription_scope, principal_id) == []


def test_a_pre_existing_grant_is_adopted(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    namespace: str,
    resource_group: str,
) -> None:
    principal_id = new_principal(azure_emulator)
    scope = rg_scope(azure_emulator, resource_group)
    existing_name = str(uuid.uuid4())
    authorization_client.role_assignments.create(
        scope,
        existing_name,
        {
            "role_definition_id": f"/subscriptions/{azure_emulator.subscription_id}/providers/"
            f"Microsoft.Authorization/roleDefinitions/{READER}",
            "principal_id": principal_id,
            "principal_type": "ServicePrincipal",
        },
    )
    apply(kube_emulator, namespace, role_assignment("adopter", scope, principal=raw_principal(principal_id)))
    body = wait_ready(kube_emulator, namespace, "roleassignment/adopter")
    assert body["status"]["adopted"] is True
    assert body["status"]["name"] == existing_name
    assert "adopted" in ready_condition(body)["message"]
    (assignment,) = assignments_of(authorization_client, scope, principal_id)
    assert assignment.name == existing_name
    assert_next_pass_writes_nothing(azure_emulator, operator, scope)


def test_a_principal_change_replaces_the_assignment(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    namespace: str,
    resource_group: str,
) -> None:
    first, second = new_principal(azure_emulator), new_principal(azure_emulator)
    scope = rg_scope(azure_emulator, resource_group)
    apply(kube_emulator, namespace, role_assignment("swap", scope, principal=raw_principal(first)))
    before = wait_ready(kube_emulator, namespace, "roleassignment/swap")
    apply(kube_emulator, namespace, role_assignment("swap", scope, principal=raw_principal(second)))

    after = wait_object(
        kube_emulator,
        namespace,
        "roleassignment/swap",
        lambda body: body["status"].get("principalId") == second and is_ready(body),
        timeout=20,
        what="the assignment to be replaced",
    )
    assert after["status"]["name"] != before["status"]["name"]
    assert assignments_of(authorization_client, scope, first) == []
    (assignment,) = assignments_of(authorization_client, scope, second)
    assert assignment.name == after["status"]["name"]


def test_drift_is_repaired(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    namespace: str,
    resource_group: str,
) -> None:
    principal_id = new_principal(azure_emulator)
    scope = rg_scope(azure_emulator, resource_group)
    apply(
        kube_emulator,
        namespace,
        role_assignment(
            "drifty",
            scope,
            principal=raw_principal(principal_id),
            extra="  description: read the app's group\n",
        ),
    )
    name = wait_ready(kube_emulator, namespace, "roleassignment/drifty")["status"]["name"]
    described = helpers.marked_description(
        "read the app's group", helpers.owner(kube_emulator, namespace, "drifty")
    )

    authorization_client.role_assignments.delete(scope, name)
    recreated = wait_for(
        lambda: get_assignment(authorization_client, scope, name), timeout=15, what="the deleted assignment"
    )
    assert recreated.description == described, "the spec's text, then the ownership marker"

    authorization_client.role_assignments.create(
        scope,
        name,
        {
            "role_definition_id": recreated.role_definition_id,
            "principal_id": principal_id,
            "principal_type": "ServicePrincipal",
            "description": "edited by hand",
        },
    )

    def repaired() -> bool:
        current = get_assignment(authorization_client, scope, name)
        return current is not None and current.description == described

    wait_for(repaired, timeout=15, what="the edited description to be repaired")


def test_each_deletion_policy(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    namespace: str,
    resource_group: str,
) -> None:
    deleted, orphaned = new_principal(azure_emulator), new_principal(azure_emulator)
    scope = rg_scope(azure_emulator, resource_group)
    apply(
        kube_emulator,
        namespace,
        role_assignment("deleted", scope, principal=raw_principal(deleted))
        + "---\n"
        + role_assignment(
            "orphaned", scope, principal=raw_principal(orphaned), extra="  deletionPolicy: Orphan\n"
        ),
    )
    wait_ready(kube_emulator, namespace, "roleassignment/deleted")
    wait_ready(kube_emulator, namespace, "roleassignment/orphaned")
    kube_emulator.kubectl(
        "delete", "-n", namespace, "roleassignment/deleted", "roleassignment/orphaned", "--timeout=30s"
    )
    assert assignments_of(authorization_client, scope, deleted) == []
    assert len(assignments_of(authorization_client, scope, orphaned)) == 1


def test_two_objects_declaring_the_same_grant_share_it_until_the_last_is_deleted(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    namespace: str,
    resource_group: str,
) -> None:
    principal_id = new_principal(azure_emulator)
    scope = rg_scope(azure_emulator, resource_group)
    apply(
        kube_emulator,
        namespace,
        role_assignment("one", scope, principal=raw_principal(principal_id))
        + "---\n"
        + role_assignment("two", scope, principal=raw_principal(principal_id)),
    )
    one = wait_ready(kube_emulator, namespace, "roleassignment/one")
    two = wait_ready(kube_emulator, namespace, "roleassignment/two")
    assert one["status"]["name"] == two["status"]["name"]
    kube_emulator.kubectl("delete", "-n", namespace, "roleassignment/one", "--timeout=30s")
    assert len(assignments_of(authorization_client, scope, principal_id)) == 1
    kube_emulator.kubectl("delete", "-n", namespace, "roleassignment/two", "--timeout=30s")
    assert assignments_of(authorization_client, scope, principal_id) == []


def test_a_refused_deletion_explains_itself_and_the_force_annotation_releases_it(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    namespace: str,
    resource_group: str,
) -> None:
    principal_id = new_principal(azure_emulator)
    scope = rg_scope(azure_emulator, resource_group)
    apply(
        kube_emulator, namespace, role_assignment("locked-out", scope, principal=raw_principal(principal_id))
    )
    name = wait_ready(kube_emulator, namespace, "roleassignment/locked-out")["status"]["name"]
    azure_emulator.inject_fault(
        path_regex=f"/roleAssignments/{name}$",
        method="DELETE",
        status=403,
        code="AuthorizationFailed",
        message=f"The client does not have authorization to perform action "
        f"'Microsoft.Authorization/roleAssignments/delete' over scope '{scope}'",
        count=1000,
    )
    try:
        kube_emulator.kubectl("delete", "-n", namespace, "roleassignment/locked-out", "--wait=false")
        blocked = wait_reason(
            kube_emulator, namespace, "roleassignment/locked-out", "DeletionBlocked", timeout=15
        )
        message = ready_condition(blocked)["message"]
        assert "AuthorizationFailed" in message
        assert "identityoperator.dev/force-delete" in message
        kube_emulator.kubectl(
            "annotate", "-n", namespace, "roleassignment/locked-out", "identityoperator.dev/force-delete=true"
        )
        wait_gone(kube_emulator, namespace, "roleassignment/locked-out", timeout=40)
    finally:
        azure_emulator.clear_faults()

    def release_warning() -> dict[str, Any] | None:
        return next(
            (
                event
                for event in events_for(kube_emulator, namespace, "locked-out")
                if event.get("reason") == "DeletionBlocked"
                and "may remain in Azure:" in event.get("message", "")
            ),
            None,
        )

    warning = wait_for(release_warning, timeout=10, what="the Warning Event of the release")
    assert warning["type"] == "Warning"
    assert len(assignments_of(authorization_client, scope, principal_id)) == 1


def test_errors_that_need_the_user_say_how_to_fix_them(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    namespace: str,
    resource_group: str,
) -> None:
    principal_id = new_principal(azure_emulator)
    scope = rg_scope(azure_emulator, resource_group)

    # Rejected at admission: a scope that is not an ARM ID, a principal ID that is not a GUID, two roles.
    for manifest, expected in (
        (
            role_assignment("bad-scope", "my-resource-group", principal=raw_principal(principal_id)),
            "spec.scope",
        ),
        (role_assignment("bad-principal", scope, principal=raw_principal("my-app")), "principalId"),
        (
            role_assignment(
                "two-roles",
                scope,
                principal=raw_principal(principal_id),
                extra=f"  roleDefinitionId: {READER}\n",
            ),
            "exactly one of role",
        ),
    ):
        rejected = kube_emulator.kubectl("apply", "-n", namespace, "-f", "-", input=manifest, check=False)
        assert rejected.returncode != 0
        assert expected in rejected.stderr, rejected.stderr

    forbidden_name = reader_assignment_name(azure_emulator, scope, principal_id, CONTRIBUTOR)
    azure_emulator.inject_fault(
        path_regex=f"/roleAssignments/{forbidden_name}$",
        method="PUT",
        status=403,
        code="AuthorizationFailed",
        message="The client does not have authorization to perform action "
        f"'Microsoft.Authorization/roleAssignments/write' over scope '{scope}'",
        count=1000,
    )
    try:
        apply(
            kube_emulator,
            namespace,
            role_assignment(
                "unknown-role",
                scope,
                principal=raw_principal(principal_id),
                role="role: Key Vault Secret User",
            )
            + "---\n"
            + role_assignment(
                "missing-group",
                rg_scope(azure_emulator, f"{resource_group}-missing"),
                principal=raw_principal(principal_id),
            )
            + "---\n"
            + role_assignment(
                "forbidden", scope, principal=raw_principal(principal_id), role="role: Contributor"
            )
            + "---\n"
            + role_assignment(
                "wrong-type", scope, principal=raw_principal(principal_id, "User"), role="role: Owner"
            ),
        )
        expectations = {
            "unknown-role": ("RoleNotFound", "spec.roleDefinitionId"),
            "missing-group": ("ResourceGroupNotFound", "could not be found"),
            "forbidden": ("AuthorizationFailed", "User Access Administrator"),
            "wrong-type": ("InvalidSpec", "UnmatchedPrincipalType"),
        }
        for name, (reason, hint) in expectations.items():
            body = wait_reason(kube_emulator, namespace, f"roleassignment/{name}", reason, timeout=20)
            condition = ready_condition(body)
            assert condition["status"] == "False"
            assert hint in condition["message"], condition["message"]
            event = wait_for(
                functools.partial(reason_event, kube_emulator, namespace, name, reason),
                timeout=10,
                what=f"a {reason} Event for {name}",
            )
            assert event["type"] == "Warning"
    finally:
        azure_emulator.clear_faults()
    assert assignments_of(authorization_client, scope, principal_id) == []

    # Fixing the spec is what makes it progress: the unknown role is corrected.
    apply(
        kube_emulator,
        namespace,
        role_assignment("unknown-role", scope, principal=raw_principal(principal_id)),
    )
    wait_ready(kube_emulator, namespace, "roleassignment/unknown-role")


def test_principal_not_found_for_a_raw_id_is_retried_and_said(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    msi_client: ManagedServiceIdentityClient,
    namespace: str,
    resource_group: str,
    principal_delay: float,
) -> None:
    fresh = msi_client.user_assigned_identities.create_or_update(
        resource_group, "fresh", {"location": "westeurope"}
    ).principal_id
    scope = rg_scope(azure_emulator, resource_group)
    apply(kube_emulator, namespace, role_assignment("fresh", scope, principal=raw_principal(fresh, None)))
    waiting = wait_reason(kube_emulator, namespace, "roleassignment/fresh", "WaitingForPrincipal", timeout=10)
    assert "replicate" in ready_condition(waiting)["message"]
    body = wait_ready(kube_emulator, namespace, "roleassignment/fresh", timeout=30)
    assert body["status"]["principalType"] == "ServicePrincipal"
    assert len(assignments_of(authorization_client, scope, fresh)) == 1


def reader_assignment_name(
    azure: AzureEmulatorInfo, scope: str, principal_id: str, role: str = READER
) -> str:
    role_id = (
        f"/subscriptions/{azure.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    )
    return ids.role_assignment_name(scope=scope, principal_id=principal_id, role_definition_id=role_id)


def test_operator_killed_between_the_azure_write_and_the_status_write(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    namespace: str,
    resource_group: str,
) -> None:
    first, second = new_principal(azure_emulator), new_principal(azure_emulator)
    scope = rg_scope(azure_emulator, resource_group)
    apply(kube_emulator, namespace, role_assignment("crashy", scope, principal=raw_principal(first)))
    old_name = wait_ready(kube_emulator, namespace, "roleassignment/crashy")["status"]["name"]
    new_name = reader_assignment_name(azure_emulator, scope, second)
    # A principal change: the new assignment is PUT, then the old one deleted, then status written. The
    # emulator holds the DELETE, so the operator is killed after the Azure write of the new assignment and
    # before any status write.
    azure_emulator.set_latency(3.0, path_regex=f"/roleAssignments/{old_name}$", method="DELETE")
    azure_emulator.reset_counts()
    try:
        apply(kube_emulator, namespace, role_assignment("crashy", scope, principal=raw_principal(second)))
        wait_for(
            lambda: any(k.startswith("DELETE ") and old_name in k for k in azure_emulator.request_counts()),
            timeout=15,
            interval=0.05,
            what="the old assignment's DELETE, after the new one's PUT",
        )
        operator.kill()
    finally:
        azure_emulator.clear_latency()
    assert get_assignment(authorization_client, scope, new_name) is not None, "the Azure write happened"
    body = get_object(kube_emulator, namespace, "roleassignment/crashy")
    assert body is not None
    assert body["status"]["name"] == old_name, "the status write did not happen"
    operator.start()

    wait_object(
        kube_emulator,
        namespace,
        "roleassignment/crashy",
        lambda current: current["status"]["name"] == new_name and is_ready(current),
        timeout=30,
        what="the restarted operator to record the new assignment",
    )
    assert assignments_of(authorization_client, scope, first) == []
    (assignment,) = assignments_of(authorization_client, scope, second)
    assert assignment.name == new_name
    assert_next_pass_writes_nothing(azure_emulator, operator, scope)


def test_the_example_is_accepted_and_explains_what_it_waits_for(
    operator: SessionOperator, kube_emulator: KubeEmulatorInfo, namespace: str
) -> None:
    kube_emulator.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "role-assignment.yaml"))
    waiting = wait_reason(
        kube_emulator, namespace, "roleassignment/demo-workload-secrets", "ReferenceNotFound"
    )
    assert "UserAssignedIdentity 'demo-workload'" in ready_condition(waiting)["message"]
    # The placeholder subscription does not exist in this Azure.
    unknown = wait_reason(
        kube_emulator, namespace, "roleassignment/platform-team-reader", "SubscriptionNotFound"
    )
    assert "SubscriptionNotFound" in ready_condition(unknown)["message"]
    kube_emulator.kubectl(
        "delete", "-n", namespace, "-f", str(EXAMPLES / "role-assignment.yaml"), "--timeout=30s"
    )
