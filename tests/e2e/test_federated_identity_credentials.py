"""FederatedIdentityCredential end to end: the real operator process, both emulators and real kubectl.

Covers an identity and its credential applied together (service account subject, cluster issuer), a
quiet second pass, the credential following its identity when Azure re-creates it, Azure's limits (20 per
identity, unique issuer and subject) as conditions, many credentials of one identity written without
Azure's concurrency refusal, a missing identity that appears later, immutable fields, and deletion (own
credential only; after its identity is gone; Orphan). Then the cluster's side: an operator with no
configured issuer using the one the API server publishes, a ServiceAccount that does not exist yet (and
one deleted later), an issuer that is not the cluster's, and a subject naming another namespace's
ServiceAccount.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from azure.mgmt.msi import ManagedServiceIdentityClient

from e2e.helpers import arm_reads, identity_manifest
from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo, start_kube_emulator
from fixtures.operator import (
    OperatorProcess,
    SessionOperator,
    apply,
    apply_crds,
    events_for,
    operator_environment,
    ready_condition,
    wait_for,
    wait_gone,
    wait_object,
    wait_ready,
    wait_reason,
)

pytestmark = pytest.mark.e2e

RECONCILE_NOW = "identityoperator.dev/reconcile-now"


def credential_manifest(name: str, identity: str, body: str = "  serviceAccountRef:\n    name: api\n") -> str:
    return f"""
apiVersion: identityoperator.dev/v1alpha1
kind: FederatedIdentityCredential
metadata:
  name: {name}
spec:
  identityRef:
    name: {identity}
{body}"""


def service_accounts(*names: str) -> str:
    """ServiceAccounts to apply after other documents (each opens with its own separator)."""
    return "".join(
        f"\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n" for name in names
    )


def event_kinds(kube: KubeEmulatorInfo, namespace: str, name: str) -> Counter[tuple[str, str]]:
    """How many Events of each (type, reason) the object called `name` has."""
    return Counter((event["type"], event["reason"]) for event in events_for(kube, namespace, name))


def credentials(
    msi_client: ManagedServiceIdentityClient, resource_group: str, identity: str
) -> dict[str, str]:
    """name → subject of the identity's credentials in Azure."""
    return {
        c.name: c.subject for c in msi_client.federated_identity_credentials.list(resource_group, identity)
    }


def test_identity_and_credential_applied_together(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    apply(
        kube_emulator,
        namespace,
        identity_manifest("web", resource_group)
        + "---"
        + credential_manifest("web-api", "web")
        + service_accounts("api", "worker"),
    )
    body = wait_ready(kube_emulator, namespace, "fic/web-api")
    [credential] = msi_client.federated_identity_credentials.list(resource_group, "web")
    assert credential.name == "web-api"
    assert credential.issuer == operator.oidc_issuer
    assert credential.subject == f"system:serviceaccount:{namespace}:api"
    assert credential.audiences == ["api://AzureADTokenExchange"]
    status = body["status"]
    assert status["id"].lower() == credential.id.lower()
    assert status["subject"] == credential.subject
    assert status["azureName"] == "web-api"

    writes, reads = azure_emulator.arm_write_count(resource_group), arm_reads(azure_emulator, resource_group)
    time.sleep(1.5 * operator.sync_interval)  # every object is checked at least once
    assert arm_reads(azure_emulator, resource_group) > reads, "the drift check ran"
    assert azure_emulator.arm_write_count(resource_group) == writes

    # The identity re-created behind our back takes its credentials with it; the credential follows.
    old_principal = msi_client.user_assigned_identities.get(resource_group, "web").principal_id
    msi_client.user_assigned_identities.delete(resource_group, "web")
    wait_for(
        lambda: (
            credentials(msi_client, resource_group, "web")
            if _exists(msi_client, resource_group, "web")
            else None
        ),
        timeout=6 * operator.sync_interval,
        what="the credential under the re-created identity",
    )
    assert msi_client.user_assigned_identities.get(resource_group, "web").principal_id != old_principal
    assert credentials(msi_client, resource_group, "web") == {
        "web-api": f"system:serviceaccount:{namespace}:api"
    }
    wait_ready(kube_emulator, namespace, "fic/web-api")

    # Spec change: a different service account, written in place.
    apply(
        kube_emulator,
        namespace,
        credential_manifest("web-api", "web", "  serviceAccountRef:\n    name: worker\n"),
    )
    wait_for(
        lambda: (
            credentials(msi_client, resource_group, "web")
            == {"web-api": f"system:serviceaccount:{namespace}:worker"}
        ),
        timeout=15,
        what="the new subject in Azure",
    )


def _exists(msi_client: ManagedServiceIdentityClient, resource_group: str, name: str) -> bool:
    return name in {
        i.name for i in msi_client.user_assigned_identities.list_by_resource_group(resource_group)
    }


def test_a_missing_identity_is_reported_and_followed_once_it_exists(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    apply(
        kube_emulator,
        namespace,
        credential_manifest(
            "ci-main",
            "builder",
            "  subject: repo:org/app:ref:refs/heads/main\n"
            "  issuer: https://token.actions.githubusercontent.com\n",
        ),
    )
    body = wait_reason(kube_emulator, namespace, "fic/ci-main", "ReferenceNotFound")
    assert "builder" in ready_condition(body)["message"]
    [event] = events_for(kube_emulator, namespace, "ci-main")
    assert (event["type"], event["reason"]) == ("Warning", "ReferenceNotFound")

    apply(kube_emulator, namespace, identity_manifest("builder", resource_group))
    wait_ready(kube_emulator, namespace, "fic/ci-main", timeout=15)
    [credential] = msi_client.federated_identity_credentials.list(resource_group, "builder")
    assert (credential.issuer, credential.subject) == (
        "https://token.actions.githubusercontent.com",
        "repo:org/app:ref:refs/heads/main",
    )


def test_azure_limits_are_clear_conditions_and_writes_are_serialized(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    apply(kube_emulator, namespace, identity_manifest("busy", resource_group))
    wait_ready(kube_emulator, namespace, "uai/busy")

    # Six credentials of one identity at once, each write held 0.3 s by Azure: without the operator's
    # per-identity serialization they would collide with Azure's 409 for concurrent writes.
    azure_emulator.update_settings(fic_write_seconds=0.3)
    log_start = len(operator.log_text())
    try:
        apply(
            kube_emulator,
            namespace,
            "---".join(
                credential_manifest(f"sa-{index}", "busy", f"  serviceAccountRef:\n    name: sa-{index}\n")
                for index in range(6)
            )
            + service_accounts(*(f"sa-{index}" for index in range(6))),
        )
        for index in range(6):
            wait_ready(kube_emulator, namespace, f"fic/sa-{index}", timeout=20)
    finally:
        azure_emulator.update_settings(fic_write_seconds=0.05)
    assert (
        "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity"
        not in operator.log_text()[log_start:]
    )
    assert len(credentials(msi_client, resource_group, "busy")) == 6

    # The same issuer and subject as an existing credential: a conflict naming it.
    apply(
        kube_emulator,
        namespace,
        credential_manifest("twin", "busy", "  serviceAccountRef:\n    name: sa-0\n"),
    )
    body = wait_reason(kube_emulator, namespace, "fic/twin", "Conflict")
    assert "'sa-0'" in ready_condition(body)["message"]

    # Fill the identity to Azure's maximum of 20 behind the operator's back: the 21st is refused clearly.
    for index in range(6, 20):
        msi_client.federated_identity_credentials.create_or_update(
            resource_group,
            "busy",
            f"direct-{index}",
            {
                "issuer": operator.oidc_issuer,
                "subject": f"direct-{index}",
                "audiences": ["api://AzureADTokenExchange"],
            },
        )
    apply(kube_emulator, namespace, credential_manifest("one-too-many", "busy", "  subject: extra\n"))
    body = wait_reason(kube_emulator, namespace, "fic/one-too-many", "CredentialLimitReached")
    assert "20" in ready_condition(body)["message"]
    assert [e["reason"] for e in events_for(kube_emulator, namespace, "one-too-many")] == [
        "CredentialLimitReached"
    ]

    # Room again: the drift check picks it up.
    msi_client.federated_identity_credentials.delete(resource_group, "busy", "direct-19")
    wait_ready(kube_emulator, namespace, "fic/one-too-many", timeout=4 * operator.sync_interval)


def test_immutable_fields_and_bad_input(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    namespace: str,
    resource_group: str,
) -> None:
    apply(
        kube_emulator,
        namespace,
        identity_manifest("app", resource_group)
        + "---"
        + credential_manifest("app", "app")
        + service_accounts("api"),
    )
    wait_ready(kube_emulator, namespace, "fic/app")
    for patch, needle in [
        ({"spec": {"azureName": "renamed"}}, "azureName is immutable"),
        ({"spec": {"identityRef": {"name": "other"}}}, "identityRef is immutable"),
        ({"spec": {"subject": "both"}}, "exactly one of subject or serviceAccountRef"),
    ]:
        refused = kube_emulator.kubectl(
            "patch", "-n", namespace, "fic/app", "--type=merge", "-p", json.dumps(patch), check=False
        )
        assert refused.returncode != 0
        assert needle in refused.stderr

    # A Kubernetes name that is not a valid credential name in Azure.
    apply(
        kube_emulator, namespace, credential_manifest("app.v2", "app", "  serviceAccountRef:\n    name: v2\n")
    )
    body = wait_reason(kube_emulator, namespace, "fic/app.v2", "InvalidSpec")
    assert "set spec.azureName" in ready_condition(body)["message"]


def test_deletion(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    apply(
        kube_emulator,
        namespace,
        identity_manifest("svc", resource_group)
        + "---"
        + credential_manifest("svc-a", "svc", "  serviceAccountRef:\n    name: a\n")
        + "---"
        + credential_manifest("svc-b", "svc", "  serviceAccountRef:\n    name: b\n")
        + "---"
        + credential_manifest("svc-c", "svc", "  serviceAccountRef:\n    name: c\n  deletionPolicy: Orphan\n")
        + service_accounts("a", "b", "c"),
    )
    for name in ("svc-a", "svc-b", "svc-c"):
        wait_ready(kube_emulator, namespace, f"fic/{name}")

    # Deleting one credential object removes only its own credential; Orphan leaves it in Azure.
    kube_emulator.kubectl("delete", "-n", namespace, "fic/svc-a", "fic/svc-c", "--wait=false")
    wait_gone(kube_emulator, namespace, "fic/svc-a")
    wait_gone(kube_emulator, namespace, "fic/svc-c")
    assert sorted(credentials(msi_client, resource_group, "svc")) == ["svc-b", "svc-c"]

    # The identity goes first (Delete policy), taking svc-b with it: deleting svc-b then does not hang.
    kube_emulator.kubectl("delete", "-n", namespace, "uai/svc", "--wait=false")
    wait_gone(kube_emulator, namespace, "uai/svc")
    assert not _exists(msi_client, resource_group, "svc")
    wait_object(
        kube_emulator,
        namespace,
        "fic/svc-b",
        lambda b: ready_condition(b).get("reason") in ("ReferenceNotFound", "WaitingForIdentity"),
        timeout=10,
        what="the credential to notice its identity is gone",
    )
    kube_emulator.kubectl("delete", "-n", namespace, "fic/svc-b", "--wait=false")
    wait_gone(kube_emulator, namespace, "fic/svc-b", timeout=15)


def test_operator_killed_mid_way_leaves_exactly_one_credential(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    apply(
        kube_emulator,
        namespace,
        identity_manifest("jobs", resource_group)
        + "---"
        + credential_manifest("jobs", "jobs")
        + service_accounts("api"),
    )
    wait_ready(kube_emulator, namespace, "uai/jobs")
    operator.kill()
    operator.start()
    wait_ready(kube_emulator, namespace, "fic/jobs")
    assert credentials(msi_client, resource_group, "jobs") == {
        "jobs": f"system:serviceaccount:{namespace}:api"
    }


def test_the_issuer_the_api_server_publishes_is_the_default(
    azure_emulator: AzureEmulatorInfo,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
    tmp_path: Path,
) -> None:
    """An operator started without IDENTITY_OPERATOR_OIDC_ISSUER, against a cluster of its own."""
    issuer = "https://oidc.discovered.test/issuer"
    kube = start_kube_emulator(tmp_path / "kube", "--issuer", issuer)
    operator = OperatorProcess(
        env=operator_environment(azure_emulator, kube.info, oidc_issuer=None),
        log_path=tmp_path / "operator.log",
        args=("--verbose",),
    )
    try:
        apply_crds(kube.info)
        operator.start()
        kube.info.kubectl("create", "namespace", "apps")
        apply(
            kube.info,
            "apps",
            identity_manifest("discovered", resource_group)
            + "---"
            + credential_manifest("discovered", "discovered")
            + service_accounts("api"),
        )
        body = wait_ready(kube.info, "apps", "fic/discovered")
        [credential] = msi_client.federated_identity_credentials.list(resource_group, "discovered")
        assert (credential.issuer, credential.subject) == (issuer, "system:serviceaccount:apps:api")
        assert body["status"]["issuer"] == issuer
        assert f"Cluster OIDC issuer: {issuer} (from the API server)" in operator.log_text()
    finally:
        print(operator.log_tail())  # shown when the test fails
        operator.stop()
        kube.stop()


def test_a_missing_service_account_is_reported_until_it_exists(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    apply(
        kube_emulator,
        namespace,
        identity_manifest("pending", resource_group)
        + "---"
        + credential_manifest("late", "pending", "  serviceAccountRef:\n    name: late\n"),
    )
    body = wait_reason(kube_emulator, namespace, "fic/late", "ServiceAccountNotFound")
    message = ready_condition(body)["message"]
    assert "is in Azure" in message
    assert f"no pod can use it until ServiceAccount {namespace}/late exists" in message
    assert credentials(msi_client, resource_group, "pending") == {
        "late": f"system:serviceaccount:{namespace}:late"
    }
    assert body["status"]["subject"] == f"system:serviceaccount:{namespace}:late"

    # Retried (every few seconds here, the drift interval being short) without writing anything more, and
    # announced once: the Warning with the transition only.
    writes = azure_emulator.arm_write_count(resource_group)
    time.sleep(1.5 * operator.sync_interval)
    assert azure_emulator.arm_write_count(resource_group) == writes
    assert event_kinds(kube_emulator, namespace, "late") == Counter(
        {("Normal", "Created"): 1, ("Warning", "ServiceAccountNotFound"): 1}
    )

    kube_emulator.kubectl("create", "serviceaccount", "-n", namespace, "late")
    kube_emulator.kubectl("annotate", "-n", namespace, "fic/late", f"{RECONCILE_NOW}=service-account-created")
    body = wait_ready(kube_emulator, namespace, "fic/late", timeout=10)
    assert ready_condition(body)["reason"] == "Succeeded"
    [found] = [
        e for e in events_for(kube_emulator, namespace, "late") if e["reason"] == "ServiceAccountFound"
    ]
    assert found["type"] == "Normal"
    assert found["message"].startswith(f"ServiceAccount {namespace}/late exists now")
    assert azure_emulator.arm_write_count(resource_group) == writes

    # Deleted later: the drift check (a GET of the ServiceAccount) notices.
    kube_emulator.kubectl("delete", "serviceaccount", "-n", namespace, "late")
    wait_reason(
        kube_emulator, namespace, "fic/late", "ServiceAccountNotFound", timeout=5 * operator.sync_interval
    )
    assert event_kinds(kube_emulator, namespace, "late")[("Warning", "ServiceAccountNotFound")] == 2
    assert azure_emulator.arm_write_count(resource_group) == writes


def test_a_service_account_trusted_through_another_issuer_is_a_mismatch(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    elsewhere = "https://oidc.elsewhere.test/issuer"
    apply(
        kube_emulator,
        namespace,
        identity_manifest("tokens", resource_group)
        + "---"
        + credential_manifest(
            "elsewhere", "tokens", f"  serviceAccountRef:\n    name: api\n  issuer: {elsewhere}\n"
        )
        + service_accounts("api"),
    )
    body = wait_reason(kube_emulator, namespace, "fic/elsewhere", "IssuerMismatch")
    message = ready_condition(body)["message"]
    assert repr(elsewhere) in message
    assert repr(operator.oidc_issuer) in message
    assert "no token of this cluster will ever match it" in message
    [credential] = msi_client.federated_identity_credentials.list(resource_group, "tokens")
    assert (credential.issuer, credential.subject) == (elsewhere, f"system:serviceaccount:{namespace}:api")
    assert event_kinds(kube_emulator, namespace, "elsewhere")[("Warning", "IssuerMismatch")] == 1


def test_a_subject_naming_another_namespaces_service_account_is_forbidden(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    admin = "system:serviceaccount:kube-system:admin"
    apply(
        kube_emulator,
        namespace,
        identity_manifest("guarded", resource_group)
        + "---"
        + credential_manifest("steal", "guarded", f"  subject: {admin}\n")
        + "---"
        + credential_manifest(
            "steal-named", "guarded", f"  subject: {admin}\n  issuer: {operator.oidc_issuer}\n"
        )
        + "---"
        # The same subject from another cluster's issuer is that cluster's ServiceAccount: legitimate.
        + credential_manifest(
            "other-cluster", "guarded", f"  subject: {admin}\n  issuer: https://oidc.other-cluster.test\n"
        ),
    )
    wait_ready(kube_emulator, namespace, "fic/other-cluster")
    for name in ("steal", "steal-named"):
        body = wait_reason(kube_emulator, namespace, f"fic/{name}", "ForbiddenSubject")
        message = ready_condition(body)["message"]
        assert "kube-system/admin" in message
        assert "nothing is written to Azure" in message
        assert event_kinds(kube_emulator, namespace, name) == Counter({("Warning", "ForbiddenSubject"): 1})
    assert credentials(msi_client, resource_group, "guarded") == {"other-cluster": admin}

    writes = azure_emulator.arm_write_count(resource_group)
    time.sleep(1.5 * operator.sync_interval)  # checked again at least once
    assert azure_emulator.arm_write_count(resource_group) == writes
    assert event_kinds(kube_emulator, namespace, "steal") == Counter({("Warning", "ForbiddenSubject"): 1})
