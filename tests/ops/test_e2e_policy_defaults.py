"""The operator's two policy settings, each with an operator process of its own serving one namespace:
`IDENTITY_OPERATOR_DEFAULT_POLICY=restricted` blocks the privileged roles where no policy applies (and
nothing else), and `IDENTITY_OPERATOR_POLICY_EXISTING_GRANTS=remove` takes a grant a policy added later
forbids out of Azure, where the default `report` leaves it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from azure.mgmt.authorization import AuthorizationManagementClient

from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo

from .conftest import StartOperator, declare_identity, operator_base_env, wait_ready
from .operators import eventually

pytestmark = pytest.mark.e2e

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


def grant(kube: KubeEmulatorInfo, namespace: str, name: str, identity: str, scope: str, role: str) -> None:
    body = {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "RoleAssignment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"principal": {"identityRef": {"name": identity}}, "role": role, "scope": scope},
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(body))


def ready_condition(kube: KubeEmulatorInfo, namespace: str, resource: str) -> dict[str, Any]:
    body = json.loads(kube.kubectl("get", "-n", namespace, resource, "-o", "json").stdout)
    return next((c for c in body.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})


def reason_becomes(kube: KubeEmulatorInfo, namespace: str, resource: str, reason: str) -> dict[str, Any]:
    return eventually(
        lambda: c if (c := ready_condition(kube, namespace, resource)).get("reason") == reason else None,
        timeout=30,
        what=f"{resource} to report {reason}",
    )


def test_the_restricted_default_blocks_privileged_roles_only(
    start_operator: StartOperator,
    azure_emulator: AzureEmulatorInfo,
    ops_kube: KubeEmulatorInfo,
    ops_namespace: str,
    resource_group: str,
) -> None:
    operator = start_operator(
        "restricted-default",
        env=operator_base_env(azure_emulator, ops_kube, IDENTITY_OPERATOR_DEFAULT_POLICY="restricted"),
        args=["-n", ops_namespace],
    )
    operator.wait_ready()
    identity = declare_identity(ops_kube, ops_namespace, resource_group)
    wait_ready(ops_kube, ops_namespace, identity)
    scope = f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
    azure_emulator.reset_counts()
    grant(ops_kube, ops_namespace, "owner", identity, scope, "Owner")
    grant(ops_kube, ops_namespace, "admin", identity, scope, "User Access Administrator")
    grant(ops_kube, ops_namespace, "reader", identity, scope, "Reader")
    for name in ("owner", "admin"):
        denied = reason_becomes(ops_kube, ops_namespace, f"ra/{name}", "PolicyDenied")
        assert "restricted default" in denied["message"]
    kube_wait = ops_kube.kubectl(
        "wait", "-n", ops_namespace, "--for=condition=Ready", "--timeout=30s", "ra/reader", timeout=40
    )
    assert kube_wait.returncode == 0
    # The Reader grant, nothing else, in this test's resource group (the emulator is shared).
    assert (
        azure_emulator.arm_write_count(
            f"/resourceGroups/{resource_group}/providers/Microsoft.Authorization/roleAssignments"
        )
        == 1
    )


def test_existing_grants_a_new_policy_forbids_are_removed_when_so_configured(
    start_operator: StartOperator,
    azure_emulator: AzureEmulatorInfo,
    ops_kube: KubeEmulatorInfo,
    ops_namespace: str,
    resource_group: str,
    authorization_client: AuthorizationManagementClient,
) -> None:
    operator = start_operator(
        "remove-denied",
        env=operator_base_env(azure_emulator, ops_kube, IDENTITY_OPERATOR_POLICY_EXISTING_GRANTS="remove"),
        args=["-n", ops_namespace],
    )
    operator.wait_ready()
    identity = declare_identity(ops_kube, ops_namespace, resource_group)
    wait_ready(ops_kube, ops_namespace, identity)
    scope = f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
    grant(ops_kube, ops_namespace, "contributor", identity, scope, "Contributor")
    ops_kube.kubectl("wait", "-n", ops_namespace, "--for=condition=Ready", "--timeout=30s", "ra/contributor")
    assignment = json.loads(
        ops_kube.kubectl("get", "-n", ops_namespace, "ra/contributor", "-o", "json").stdout
    )["status"]["name"]

    label = uuid.uuid4().hex[:8]
    ops_kube.kubectl("label", "namespace", ops_namespace, f"remove-test={label}")
    policy = {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "IdentityAccessPolicy",
        "metadata": {"name": f"readers-only-{label}"},
        "spec": {
            "namespaceSelector": {"matchLabels": {"remove-test": label}},
            "roles": {"allow": ["Reader"]},
        },
    }
    ops_kube.kubectl("apply", "-f", "-", input=json.dumps(policy))
    try:
        reason_becomes(ops_kube, ops_namespace, "ra/contributor", "PolicyDenied")

        def removed() -> bool:
            names = {a.name for a in authorization_client.role_assignments.list_for_scope(scope)}
            return assignment not in names

        eventually(removed, timeout=30, what="the forbidden assignment to be removed from Azure")
    finally:
        ops_kube.kubectl("delete", "identityaccesspolicy", f"readers-only-{label}")


def test_the_role_assignment_limit_is_said_before_azure_refuses(
    start_operator: StartOperator,
    azure_emulator: AzureEmulatorInfo,
    ops_kube: KubeEmulatorInfo,
    ops_namespace: str,
    resource_group: str,
    authorization_client: AuthorizationManagementClient,
) -> None:
    """With the limit two above what the subscription holds: the first new assignment warns that the
    subscription nears it, the second reaches it, the third is refused without asking Azure."""
    existing = len(list(authorization_client.role_assignments.list_for_subscription()))
    limit = existing + 2
    operator = start_operator(
        "assignment-limit",
        env=operator_base_env(azure_emulator, ops_kube, IDENTITY_OPERATOR_ROLE_ASSIGNMENT_LIMIT=str(limit)),
        args=["-n", ops_namespace],
    )
    operator.wait_ready()
    identity = declare_identity(ops_kube, ops_namespace, resource_group)
    wait_ready(ops_kube, ops_namespace, identity)
    scope = f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
    for name, role in (("first", "Reader"), ("second", "Contributor")):
        grant(ops_kube, ops_namespace, name, identity, scope, role)
        ops_kube.kubectl("wait", "-n", ops_namespace, "--for=condition=Ready", "--timeout=30s", f"ra/{name}")
    events = json.loads(ops_kube.kubectl("get", "events", "-n", ops_namespace, "-o", "json").stdout)["items"]
    near = [e for e in events if e["reason"] == "RoleAssignmentLimitNear"]
    assert near
    assert all(e["type"] == "Warning" for e in near)
    assert operator.metric(
        "azure_identity_operator_role_assignments", {"subscription": azure_emulator.subscription_id}
    ) == float(limit)

    azure_emulator.reset_counts()
    grant(ops_kube, ops_namespace, "third", identity, scope, "Key Vault Secrets User")
    refused = reason_becomes(ops_kube, ops_namespace, "ra/third", "RoleAssignmentLimitExceeded")
    assert f"IDENTITY_OPERATOR_ROLE_ASSIGNMENT_LIMIT={limit}" in refused["message"]
    assert (
        azure_emulator.arm_write_count(
            f"/resourceGroups/{resource_group}/providers/Microsoft.Authorization/roleAssignments"
        )
        == 0
    )
