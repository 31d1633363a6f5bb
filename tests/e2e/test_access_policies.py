"""IdentityAccessPolicy end to end: the real operator process, both emulators and real kubectl.

Each test labels its own namespace and applies policies selecting only that label, so the session's other
tests are never governed by them. Covers: a denied role, a scope outside the allowed ones, a principal that
is not the namespace's, a credential for another namespace's ServiceAccount or an unlisted issuer, and an
identity in a resource group the namespace may not use — each `PolicyDenied` (Stalled, a Warning Event)
with no ARM write at all; allowed requests still Ready; a WorkloadIdentity whose role is denied; a policy
edited or deleted later taking effect on objects already Ready (grants left in Azure, as configured); two
policies combining, deny winning; the policy's status listing the namespaces it selects.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
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
    wait_object,
    wait_ready,
    wait_reason,
)

pytestmark = pytest.mark.e2e

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


@pytest.fixture
def governed(kube_emulator: KubeEmulatorInfo, namespace: str) -> Iterator[str]:
    """A label value only this test's namespace carries (`policy-test=<value>`); policies made with
    `policy()` select it, and are deleted afterwards."""
    value = uuid.uuid4().hex[:8]
    kube_emulator.kubectl("label", "namespace", namespace, f"policy-test={value}")
    yield value
    kube_emulator.kubectl("delete", "identityaccesspolicy", "-l", f"policy-test={value}", "--wait=false")


def policy(kube: KubeEmulatorInfo, label: str, name: str, **spec: Any) -> None:
    body = {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "IdentityAccessPolicy",
        "metadata": {"name": f"{name}-{label}", "labels": {"policy-test": label}},
        "spec": {"namespaceSelector": {"matchLabels": {"policy-test": label}}, **spec},
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(body))


def role_assignment(name: str, scope: str, *, role: str | None = None, **principal: Any) -> str:
    spec: dict[str, Any] = {
        "principal": principal or {"identityRef": {"name": "app"}},
        "scope": scope,
    }
    if role is None:
        spec["roleDefinitionId"] = READER
    else:
        spec["role"] = role
    return yaml.safe_dump(
        {
            "apiVersion": "identityoperator.dev/v1alpha1",
            "kind": "RoleAssignment",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def assert_denied(kube: KubeEmulatorInfo, namespace: str, resource: str, *, says: str) -> dict[str, Any]:
    body = wait_reason(kube, namespace, resource, "PolicyDenied")
    message = ready_condition(body)["message"]
    assert says in message, message
    stalled = [c for c in body["status"]["conditions"] if c["type"] == "Stalled"]
    assert stalled
    assert stalled[0]["status"] == "True"
    name = resource.split("/", 1)[1]
    wait_for(
        lambda: any(
            e["type"] == "Warning" and e["reason"] == "PolicyDenied"
            for e in events_for(kube, namespace, name)
        ),
        timeout=10,
        what=f"a Warning Event on {resource}",
    )
    return body


def test_what_a_policy_denies_is_refused_before_any_azure_write(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    governed: str,
    authorization_client: AuthorizationManagementClient,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    policy(
        kube_emulator,
        governed,
        "team",
        roles={"allow": ["Reader", "Key Vault Secrets User"]},
        scopes={"allow": [scope]},
        identities={"resourceGroups": {"allow": [scope]}},
    )
    wait_for(
        lambda: (
            (get_object(kube_emulator, "", f"identityaccesspolicy/team-{governed}") or {})
            .get("status", {})
            .get("namespaces")
            == [namespace]
        ),
        timeout=15,
        what="the policy's status to list the namespace",
    )
    apply(kube_emulator, namespace, identity_manifest("app", resource_group))
    wait_ready(kube_emulator, namespace, "uai/app")
    azure_emulator.reset_counts()

    other_group = f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/rg-elsewhere"
    apply(kube_emulator, namespace, role_assignment("owner", scope, role="Owner"))
    apply(kube_emulator, namespace, role_assignment("elsewhere", other_group))
    apply(
        kube_emulator,
        namespace,
        role_assignment(
            "foreign", scope, principalId="22222222-0000-0000-0000-000000000002", principalType="User"
        ),
    )
    apply(
        kube_emulator,
        namespace,
        yaml.safe_dump(
            {
                "apiVersion": "identityoperator.dev/v1alpha1",
                "kind": "FederatedIdentityCredential",
                "metadata": {"name": "github"},
                "spec": {
                    "identityRef": {"name": "app"},
                    "issuer": "https://token.actions.githubusercontent.com",
                    "subject": "repo:someone/else:ref:refs/heads/main",
                },
            }
        ),
    )
    apply(kube_emulator, namespace, identity_manifest("stray", "rg-elsewhere"))

    assert_denied(
        kube_emulator, namespace, "ra/owner", says="role 'Owner' is not one this namespace may grant"
    )
    assert_denied(kube_emulator, namespace, "ra/elsewhere", says="spec.scopes.allow")
    assert_denied(kube_emulator, namespace, "ra/foreign", says="spec.principals.allow")
    assert_denied(kube_emulator, namespace, "fic/github", says="spec.federatedCredentials.issuers.allow")
    assert_denied(kube_emulator, namespace, "uai/stray", says="spec.identities.resourceGroups.allow")
    # No write where these objects would have written (the emulator is shared with other tests).
    for where in (f"/resourceGroups/{resource_group}/", "/resourceGroups/rg-elsewhere/"):
        assert azure_emulator.arm_write_count(where) == 0, azure_emulator.request_counts()

    # What the policy allows still works.
    apply(kube_emulator, namespace, role_assignment("reader", scope))
    wait_ready(kube_emulator, namespace, "ra/reader")


def test_a_policy_change_takes_effect_on_objects_already_ready(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    governed: str,
    authorization_client: AuthorizationManagementClient,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    policy(kube_emulator, governed, "base", roles={"allow": ["Reader", "Contributor"]})
    apply(kube_emulator, namespace, identity_manifest("app", resource_group))
    apply(kube_emulator, namespace, role_assignment("reader", scope))
    body = wait_ready(kube_emulator, namespace, "ra/reader")
    assignment = body["status"]["name"]

    # A second policy denying Reader: deny wins, the object says so, the grant stays (report mode).
    policy(kube_emulator, governed, "no-readers", roles={"deny": ["Reader"]})
    denied = assert_denied(kube_emulator, namespace, "ra/reader", says=f"no-readers-{governed}")
    assert "spec.roles.deny" in ready_condition(denied)["message"]
    names = {a.name for a in authorization_client.role_assignments.list_for_scope(scope, filter="atScope()")}
    assert assignment in names

    # The denying policy deleted: Ready again, without a new assignment.
    kube_emulator.kubectl("delete", "identityaccesspolicy", f"no-readers-{governed}")
    again = wait_ready(kube_emulator, namespace, "ra/reader", timeout=40)
    assert again["status"]["name"] == assignment


def test_a_workload_identity_whose_role_is_denied_says_which(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    governed: str,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    policy(kube_emulator, governed, "readers-only", roles={"allow": ["Reader"]})
    manifests = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api"}},
        {
            "apiVersion": "identityoperator.dev/v1alpha1",
            "kind": "WorkloadIdentity",
            "metadata": {"name": "api"},
            "spec": {
                "serviceAccountName": "api",
                "identity": {"resourceGroup": resource_group, "location": "westeurope"},
                "roles": [{"role": "Reader", "scope": scope}, {"role": "Contributor", "scope": scope}],
            },
        },
    ]
    apply(kube_emulator, namespace, yaml.safe_dump_all(manifests))
    assert_denied(kube_emulator, namespace, "wi/api", says="role 'Contributor'")

    def role_parts(body: dict[str, Any]) -> list[str]:
        return sorted(p["reason"] for p in body["status"].get("parts", []) if p["kind"] == "RoleAssignment")

    # The allowed role is granted all the same; the whole stays PolicyDenied, naming the denied part.
    body = wait_object(
        kube_emulator,
        namespace,
        "wi/api",
        lambda b: role_parts(b) == ["PolicyDenied", "Succeeded"],
        what="the allowed role's part Ready and the denied one PolicyDenied",
    )
    assert ready_condition(body)["reason"] == "PolicyDenied"


def test_a_policy_made_while_the_operator_was_stopped_is_enforced_after_a_restart(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    governed: str,
) -> None:
    """Objects Ready from before are checked in bulk after a restart; the policy check is part of it."""
    scope = rg_scope(azure_emulator, resource_group)
    apply(kube_emulator, namespace, identity_manifest("app", resource_group))
    apply(kube_emulator, namespace, role_assignment("reader", scope))
    wait_ready(kube_emulator, namespace, "ra/reader")
    operator.stop()
    try:
        policy(kube_emulator, governed, "no-readers", roles={"deny": ["Reader"]})
    finally:
        operator.start()
    assert_denied(kube_emulator, namespace, "ra/reader", says=f"no-readers-{governed}")
