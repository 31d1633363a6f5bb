"""WorkloadIdentity end to end: the real operator process, both emulators and real kubectl.

Covers one object applied → identity, credential, role assignments (owned, labelled) and ServiceAccount
annotations in place, all Ready, and a second pass that writes nothing; the workload signing in as the
identity with a ServiceAccount token (the real SDK's WorkloadIdentityCredential against the emulator's
token endpoint) and doing only what its roles allow; roles added, changed and removed (Azure follows
exactly); a part edited or deleted by hand put back; deletion per policy (Delete removes everything it
owns from Azure, Orphan keeps Azure) with the ServiceAccount's annotations removed and the ServiceAccount
kept; an existing identity used through identityRef (and left alone on deletion); and what needs the
user: a missing ServiceAccount (then created), an unresolvable role, a part name taken by an object it
does not own, a ServiceAccount name that is not one of this namespace.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import WorkloadIdentityCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from azure_identity_operator.handlers import kube_api
from e2e.helpers import identity_manifest, rg_scope
from fixtures.azure_emulator import AzureEmulatorInfo, federated_assertion
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
CLIENT_ID = "azure.workload.identity/client-id"
TENANT_ID = "azure.workload.identity/tenant-id"
LABEL = "identityoperator.dev/workload-identity"


def service_account(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}


def workload(
    name: str,
    account: str,
    roles: list[dict[str, str]],
    *,
    identity: dict[str, Any] | None = None,
    identity_ref: str | None = None,
    deletion_policy: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"serviceAccountName": account, "roles": roles}
    if identity_ref is not None:
        spec["identityRef"] = {"name": identity_ref}
    else:
        spec["identity"] = identity
    if deletion_policy is not None:
        spec["deletionPolicy"] = deletion_policy
    return {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "WorkloadIdentity",
        "metadata": {"name": name},
        "spec": spec,
    }


def apply_docs(kube: KubeEmulatorInfo, namespace: str, *documents: dict[str, Any]) -> None:
    apply(kube, namespace, yaml.safe_dump_all(documents))


def principal_roles(client: AuthorizationManagementClient, scope: str, principal_id: str) -> set[str]:
    """Role definition GUIDs granted to the principal exactly at `scope`."""
    return {
        assignment.role_definition_id.rsplit("/", 1)[-1]
        for assignment in client.role_assignments.list_for_scope(scope, filter="atScope()")
        if assignment.principal_id == principal_id and assignment.scope.lower() == scope.lower()
    }


def operator_requests(kube: KubeEmulatorInfo, after: int) -> list[dict[str, Any]]:
    """The operator's requests to the API server since the first `after` ones the audit log recorded."""
    return [r for r in kube.audit_records()[after:] if r.get("userAgent") == kube_api.USER_AGENT]


def parts_of(kube: KubeEmulatorInfo, namespace: str, name: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The objects labelled as the workload identity's parts, by (kind, name)."""
    listed = json.loads(
        kube.kubectl("get", "-n", namespace, "azureidentity", "-l", f"{LABEL}={name}", "-o", "json").stdout
    )
    return {(item["kind"], item["metadata"]["name"]): item for item in listed["items"]}


def annotations_of(kube: KubeEmulatorInfo, namespace: str, account: str) -> dict[str, str]:
    """The ServiceAccount's annotations but kubectl's own record of the last apply."""
    body = get_object(kube, namespace, f"serviceaccount/{account}")
    assert body is not None
    annotations = dict(body["metadata"].get("annotations") or {})
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    return annotations


def sign_in_as_workload(
    azure: AzureEmulatorInfo, tmp_path: Path, *, client_id: str, subject: str, issuer: str
) -> ResourceManagementClient:
    """What a pod's Azure SDK does: its projected token (here, one with the same claims) exchanged at the
    token endpoint for a token of the identity, then ARM calls with it."""
    token_file = tmp_path / f"token-{uuid.uuid4().hex[:6]}"
    token_file.write_text(federated_assertion(issuer=issuer, subject=subject))
    credential = WorkloadIdentityCredential(
        tenant_id=azure.tenant_id,
        client_id=client_id,
        token_file_path=str(token_file),
        authority=azure.authority_host,
        disable_instance_discovery=True,
        connection_verify=azure.ca_file,
    )
    return ResourceManagementClient(credential, azure.subscription_id, **azure.client_options())


def test_one_object_gives_a_service_account_its_access_and_follows_every_change(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    resource_client: ResourceManagementClient,
    msi_client: ManagedServiceIdentityClient,
    authorization_client: AuthorizationManagementClient,
    tmp_path: Path,
) -> None:
    other_group = f"rg-other-{uuid.uuid4().hex[:6]}"
    resource_client.resource_groups.create_or_update(other_group, {"location": "westeurope"})
    scope, other_scope = rg_scope(azure_emulator, resource_group), rg_scope(azure_emulator, other_group)
    identity = {"resourceGroup": resource_group, "location": "westeurope", "tags": {"team": "billing"}}
    apply_docs(
        kube_emulator,
        namespace,
        service_account("billing", {"team.example/owner": "billing"}),
        workload("billing", "billing", [{"roleDefinitionId": READER, "scope": scope}], identity=identity),
    )
    body = wait_ready(kube_emulator, namespace, "wi/billing")

    # The identity, as Azure holds it, is what status and the ServiceAccount report.
    azure_identity = msi_client.user_assigned_identities.get(resource_group, "billing")
    status = body["status"]
    assert status["clientId"] == azure_identity.client_id
    assert status["principalId"] == azure_identity.principal_id
    assert status["id"].lower() == azure_identity.id.lower()
    assert annotations_of(kube_emulator, namespace, "billing") == {
        "team.example/owner": "billing",  # other annotations untouched
        CLIENT_ID: azure_identity.client_id,
        TENANT_ID: azure_identity.tenant_id,
    }
    [credential] = msi_client.federated_identity_credentials.list(resource_group, "billing")
    assert credential.subject == f"system:serviceaccount:{namespace}:billing"
    assert credential.issuer == operator.oidc_issuer
    assert principal_roles(authorization_client, scope, azure_identity.principal_id) == {READER}

    # Each part is an ordinary object of its kind, owned and labelled, and Ready; status lists them all.
    parts = parts_of(kube_emulator, namespace, "billing")
    assert {kind for kind, _ in parts} == {
        "UserAssignedIdentity",
        "FederatedIdentityCredential",
        "RoleAssignment",
    }
    for part in parts.values():
        [owner] = part["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "WorkloadIdentity",
            "billing",
            body["metadata"]["uid"],
        )
        assert ready_condition(part)["status"] == "True"
    assert [(p["kind"], p["ready"]) for p in status["parts"]] == [
        ("UserAssignedIdentity", "True"),
        ("FederatedIdentityCredential", "True"),
        ("RoleAssignment", "True"),
        ("ServiceAccount", "True"),
    ]

    # The workload signs in as the identity and may do what Reader on its group allows, nothing more.
    subject = f"system:serviceaccount:{namespace}:billing"
    with sign_in_as_workload(
        azure_emulator,
        tmp_path,
        client_id=azure_identity.client_id,
        subject=subject,
        issuer=operator.oidc_issuer,
    ) as as_workload:
        assert as_workload.resource_groups.get(resource_group).name == resource_group
        with pytest.raises(HttpResponseError) as refused:
            as_workload.resource_groups.get(other_group)
        assert refused.value.status_code == 403

    # A second pass changes nothing: no Azure write, no Kubernetes write but the reconcile-now annotation.
    versions = {key: part["metadata"]["resourceVersion"] for key, part in parts.items()}
    azure_emulator.reset_counts()
    seen = len(kube_emulator.audit_records())
    kube_emulator.kubectl(
        "annotate", "-n", namespace, "wi/billing", "identityoperator.dev/reconcile-now=1", "--overwrite"
    )
    account_reads = wait_for(
        lambda: [r for r in operator_requests(kube_emulator, seen) if r["resource"] == "serviceaccounts"],
        timeout=10,
        what="the second pass to read the ServiceAccount",
    )
    # Reads only (the credential part's drift check may read the ServiceAccount in the same moment).
    assert {r["verb"] for r in account_reads} == {"get"}
    time.sleep(0.5)  # let that pass finish
    writes = [
        r
        for r in operator_requests(kube_emulator, seen)
        if r["verb"] not in ("get", "list", "watch") and r.get("namespace") == namespace
    ]
    assert writes == [], writes
    assert azure_emulator.arm_write_count(f"/resourceGroups/{resource_group}/") == 0
    again = parts_of(kube_emulator, namespace, "billing")
    assert {key: part["metadata"]["resourceVersion"] for key, part in again.items()} == versions

    # Roles added, changed and removed: Azure follows exactly.
    apply_docs(
        kube_emulator,
        namespace,
        workload(
            "billing",
            "billing",
            [{"roleDefinitionId": CONTRIBUTOR, "scope": scope}, {"role": "Reader", "scope": other_scope}],
            identity=identity,
        ),
    )

    def roles_follow() -> bool:
        return principal_roles(authorization_client, scope, azure_identity.principal_id) == {
            CONTRIBUTOR
        } and principal_roles(authorization_client, other_scope, azure_identity.principal_id) == {READER}

    wait_for(roles_follow, timeout=30, what="Azure to hold exactly the new roles")
    body = wait_object(
        kube_emulator,
        namespace,
        "wi/billing",
        lambda b: (
            ready_condition(b).get("status") == "True"
            and b["status"].get("observedGeneration") == b["metadata"]["generation"]
        ),
        what="Ready for the new roles",
    )
    roles = [p for p in body["status"]["parts"] if p["kind"] == "RoleAssignment"]
    assert len(roles) == 2
    assert all(p["ready"] == "True" for p in roles)
    wait_for(
        lambda: (
            len([k for k in parts_of(kube_emulator, namespace, "billing") if k[0] == "RoleAssignment"]) == 2
        ),
        timeout=30,
        what="the removed role's RoleAssignment to go",
    )
    with sign_in_as_workload(
        azure_emulator,
        tmp_path,
        client_id=azure_identity.client_id,
        subject=subject,
        issuer=operator.oidc_issuer,
    ) as as_workload:
        assert as_workload.resource_groups.get(other_group).name == other_group

    # A part deleted by hand comes back; a part's spec edited by hand is put back.
    [role_name] = [
        name
        for (kind, name), part in parts_of(kube_emulator, namespace, "billing").items()
        if kind == "RoleAssignment" and part["spec"].get("role") == "Reader"
    ]
    kube_emulator.kubectl(
        "patch",
        "-n",
        namespace,
        f"roleassignment/{role_name}",
        "--type=merge",
        "-p",
        '{"spec":{"role":"Owner"}}',
    )
    wait_object(
        kube_emulator,
        namespace,
        f"roleassignment/{role_name}",
        lambda b: b["spec"].get("role") == "Reader" and ready_condition(b).get("status") == "True",
        what="the edited part's spec put back",
    )
    assert "Owner" not in {
        a.role_definition_id for a in authorization_client.role_assignments.list_for_scope(other_scope)
    }
    kube_emulator.kubectl("delete", "-n", namespace, "fic/billing", "--wait=false")
    wait_object(
        kube_emulator,
        namespace,
        "fic/billing",
        lambda b: not b["metadata"].get("deletionTimestamp") and ready_condition(b).get("status") == "True",
        timeout=40,
        what="the deleted credential re-created",
    )
    wait_ready(kube_emulator, namespace, "wi/billing")

    # Deletion removes everything it owns from Azure and its annotations; the ServiceAccount stays.
    kube_emulator.kubectl("delete", "-n", namespace, "wi/billing", "--timeout=60s")
    assert parts_of(kube_emulator, namespace, "billing") == {}
    with pytest.raises(ResourceNotFoundError):
        msi_client.user_assigned_identities.get(resource_group, "billing")
    assert principal_roles(authorization_client, other_scope, azure_identity.principal_id) == set()
    assert annotations_of(kube_emulator, namespace, "billing") == {"team.example/owner": "billing"}
    reasons = {event["reason"] for event in events_for(kube_emulator, namespace, "billing")}
    assert {"Created", "Deleted"} <= reasons


def test_an_existing_identity_through_identity_ref_and_the_orphan_policy(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
    authorization_client: AuthorizationManagementClient,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    apply(kube_emulator, namespace, identity_manifest("shared", resource_group))
    apply_docs(
        kube_emulator,
        namespace,
        service_account("reports"),
        workload(
            "reports",
            "reports",
            [{"roleDefinitionId": READER, "scope": scope}],
            identity_ref="shared",
            deletion_policy="Orphan",
        ),
    )
    body = wait_ready(kube_emulator, namespace, "wi/reports")
    shared = msi_client.user_assigned_identities.get(resource_group, "shared")
    assert body["status"]["clientId"] == shared.client_id
    assert annotations_of(kube_emulator, namespace, "reports")[CLIENT_ID] == shared.client_id
    assert set(parts_of(kube_emulator, namespace, "reports")) == {
        ("FederatedIdentityCredential", "reports"),
        *{k for k in parts_of(kube_emulator, namespace, "reports") if k[0] == "RoleAssignment"},
    }
    assert body["status"]["parts"][0]["kind"] == "UserAssignedIdentity"  # the referenced one, not owned

    kube_emulator.kubectl("delete", "-n", namespace, "wi/reports", "--timeout=60s")
    assert parts_of(kube_emulator, namespace, "reports") == {}
    # Orphan: Azure keeps the credential and the assignment; the referenced identity is not this object's.
    assert get_object(kube_emulator, namespace, "uai/shared") is not None
    assert [c.name for c in msi_client.federated_identity_credentials.list(resource_group, "shared")] == [
        "reports"
    ]
    assert principal_roles(authorization_client, scope, shared.principal_id) == {READER}
    assert CLIENT_ID not in annotations_of(kube_emulator, namespace, "reports")


def test_what_needs_the_user_is_said_on_the_object_with_a_warning(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    identity = {"resourceGroup": resource_group, "location": "westeurope"}

    # A ServiceAccount that does not exist yet: everything else is made; created, it is annotated.
    apply_docs(kube_emulator, namespace, workload("later", "later", [], identity=identity))
    body = wait_reason(kube_emulator, namespace, "wi/later", "ServiceAccountNotFound")
    # Named by the part that needs it first: the credential, or the ServiceAccount line itself.
    assert f"ServiceAccount {namespace}/later" in ready_condition(body)["message"]
    # Everything else is made meanwhile.
    wait_ready(kube_emulator, namespace, "uai/later")
    assert msi_client.user_assigned_identities.get(resource_group, "later").client_id
    wait_for(
        lambda: any(
            e["type"] == "Warning" and e["reason"] == "ServiceAccountNotFound"
            for e in events_for(kube_emulator, namespace, "later")
            if e["involvedObject"]["kind"] == "WorkloadIdentity"
        ),
        timeout=10,
        what="a Warning Event",
    )
    apply_docs(kube_emulator, namespace, service_account("later"))
    kube_emulator.kubectl("annotate", "-n", namespace, "wi/later", "identityoperator.dev/reconcile-now=1")
    wait_ready(kube_emulator, namespace, "wi/later")
    assert CLIENT_ID in annotations_of(kube_emulator, namespace, "later")

    # A role Azure does not know: the part says so, and so does the whole, naming the part.
    apply_docs(
        kube_emulator,
        namespace,
        workload("later", "later", [{"role": "Key Vault Secrets Wizard", "scope": scope}], identity=identity),
    )
    body = wait_reason(kube_emulator, namespace, "wi/later", "RoleNotFound")
    message = ready_condition(body)["message"]
    assert "RoleAssignment later-" in message
    assert "Key Vault Secrets Wizard" in message
    stalled = [c for c in body["status"]["conditions"] if c["type"] == "Stalled"]
    assert stalled
    assert stalled[0]["status"] == "True"
    wait_for(
        lambda: any(
            e["type"] == "Warning" and e["reason"] == "RoleNotFound"
            for e in events_for(kube_emulator, namespace, "later")
            if e["involvedObject"]["kind"] == "WorkloadIdentity"
        ),
        timeout=10,
        what="a Warning Event naming the role",
    )

    # A part's name taken by an object it does not own: nothing is taken over.
    apply(kube_emulator, namespace, identity_manifest("taken", resource_group))
    wait_ready(kube_emulator, namespace, "uai/taken")
    apply_docs(
        kube_emulator, namespace, service_account("taken"), workload("taken", "taken", [], identity=identity)
    )
    body = wait_reason(kube_emulator, namespace, "wi/taken", "Conflict")
    assert "UserAssignedIdentity taken already exists" in ready_condition(body)["message"]
    uai = get_object(kube_emulator, namespace, "uai/taken")
    assert uai is not None
    assert not uai["metadata"].get("ownerReferences")
    assert get_object(kube_emulator, namespace, "fic/taken") is None

    # A subject outside this namespace cannot even be written.
    refused = kube_emulator.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(
            workload("hijack", "system:serviceaccount:kube-system:admin", [], identity=identity)
        ),
        check=False,
    )
    assert refused.returncode != 0
    assert "serviceAccountName" in refused.stderr

    for name in ("later", "taken"):
        kube_emulator.kubectl("delete", "-n", namespace, f"wi/{name}", "--timeout=60s")
        wait_gone(kube_emulator, namespace, f"wi/{name}")
    with pytest.raises(ResourceNotFoundError):
        msi_client.user_assigned_identities.get(resource_group, "later")
    assert msi_client.user_assigned_identities.get(resource_group, "taken")  # never this object's


def test_a_service_account_acts_as_one_identity_and_passes_to_the_next_when_the_first_goes(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    identity = {"resourceGroup": resource_group, "location": "westeurope"}
    apply_docs(
        kube_emulator,
        namespace,
        service_account("shared"),
        workload("alpha", "shared", [], identity=identity),
    )
    wait_ready(kube_emulator, namespace, "wi/alpha")
    apply_docs(kube_emulator, namespace, workload("beta", "shared", [], identity=identity))
    body = wait_reason(kube_emulator, namespace, "wi/beta", "Conflict")
    assert "already declared by WorkloadIdentity" in ready_condition(body)["message"]
    assert get_object(kube_emulator, namespace, "uai/beta") is None  # nothing made while it clashes
    alpha = msi_client.user_assigned_identities.get(resource_group, "alpha")
    assert annotations_of(kube_emulator, namespace, "shared")[CLIENT_ID] == alpha.client_id

    kube_emulator.kubectl("delete", "-n", namespace, "wi/alpha", "--timeout=60s")
    wait_ready(kube_emulator, namespace, "wi/beta", timeout=40)
    beta = msi_client.user_assigned_identities.get(resource_group, "beta")
    assert annotations_of(kube_emulator, namespace, "shared")[CLIENT_ID] == beta.client_id
    kube_emulator.kubectl("delete", "-n", namespace, "wi/beta", "--timeout=60s")


def test_moving_from_separate_objects_changes_nothing_in_azure(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
    authorization_client: AuthorizationManagementClient,
) -> None:
    """The steps docs/usage.md gives for moving to a WorkloadIdentity: Azure keeps the same credential and
    the same assignment throughout; the credential is not written, the assignment at most re-marked."""
    scope = rg_scope(azure_emulator, resource_group)
    credential = {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "FederatedIdentityCredential",
        "metadata": {"name": "payments"},
        "spec": {"identityRef": {"name": "payments-id"}, "serviceAccountRef": {"name": "payments"}},
    }
    grant = {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "RoleAssignment",
        "metadata": {"name": "payments-reader"},
        "spec": {
            "principal": {"identityRef": {"name": "payments-id"}},
            "roleDefinitionId": READER,
            "scope": scope,
        },
    }
    apply(kube_emulator, namespace, identity_manifest("payments-id", resource_group))
    apply_docs(kube_emulator, namespace, service_account("payments"), credential, grant)
    for resource in ("uai/payments-id", "fic/payments", "ra/payments-reader"):
        wait_ready(kube_emulator, namespace, resource)
    identity = msi_client.user_assigned_identities.get(resource_group, "payments-id")
    [before] = [
        a
        for a in authorization_client.role_assignments.list_for_scope(scope, filter="atScope()")
        if a.principal_id == identity.principal_id
    ]
    azure_emulator.reset_counts()

    # 2. The credential handed over: orphaned, deleted, and a WorkloadIdentity of its name.
    kube_emulator.kubectl(
        "patch", "-n", namespace, "fic/payments", "--type=merge", "-p", '{"spec":{"deletionPolicy":"Orphan"}}'
    )
    wait_for(
        lambda: (
            (get_object(kube_emulator, namespace, "fic/payments") or {})
            .get("status", {})
            .get("observedGeneration")
            == 2
        ),
        timeout=20,
        what="the Orphan policy to be seen",
    )
    kube_emulator.kubectl("delete", "-n", namespace, "fic/payments", "--timeout=30s")
    apply_docs(
        kube_emulator,
        namespace,
        workload(
            "payments", "payments", [{"roleDefinitionId": READER, "scope": scope}], identity_ref="payments-id"
        ),
    )
    wait_ready(kube_emulator, namespace, "wi/payments")
    # 3. The old RoleAssignment deleted: the part still declares the grant.
    kube_emulator.kubectl("delete", "-n", namespace, "ra/payments-reader", "--timeout=30s")
    wait_ready(kube_emulator, namespace, "wi/payments")

    assert (
        azure_emulator.arm_write_count("/userAssignedIdentities/payments-id/federatedIdentityCredentials")
        == 0
    )
    # The assignment is never deleted nor made again: at most its ownership marker (in its description)
    # is rewritten in place to name the part that now declares it.
    here = f"/resourceGroups/{resource_group}/providers/Microsoft.Authorization/roleAssignments/"
    writes = {
        key.split(" ", 1)[0]
        for key in azure_emulator.request_counts()
        if here.lower() in key.lower() and not key.startswith("GET")
    }
    assert writes <= {"PUT"}, writes
    assert azure_emulator.arm_write_count(f"{here}{before.name}") == azure_emulator.arm_write_count(here)
    [credential_now] = msi_client.federated_identity_credentials.list(resource_group, "payments-id")
    assert credential_now.name == "payments"
    [after] = [
        a
        for a in authorization_client.role_assignments.list_for_scope(scope, filter="atScope()")
        if a.principal_id == identity.principal_id
    ]
    assert after.name == before.name
    assert annotations_of(kube_emulator, namespace, "payments")[CLIENT_ID] == identity.client_id
