"""`FederatedIdentityCredentialHooks` run by the generic flow, with plain data: waiting for the referenced
identity (as `obj.identity`, with the IDs Azure reported), create, update, drift, the identity re-created,
Azure's limits, bad input, the changes each pass reports, and removal (deletion policy, the identity gone,
refused, never written, a credential someone else wrote). Then the cluster's side: the issuer the cluster
publishes as the default, a ServiceAccount that does not exist (yet, or any more, or cannot be read), an
issuer that is not the cluster's, a subject naming another namespace's ServiceAccount, and the drift
check's ServiceAccount reads. Every reconcile scenario runs a second time, which must write nothing and
report no change."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.arm.identities import IdentityRef
from azure_identity_operator.reconcilers import flow
from azure_identity_operator.reconcilers.federated_identity_credentials import (
    SERVICE_ACCOUNT_FOUND,
    SERVICE_ACCOUNT_RETRY_SECONDS,
    FederatedIdentityCredentialHooks,
)
from azure_identity_operator.reconcilers.kube_port import ClusterIssuer, KubernetesError
from azure_identity_operator.status import outcome, reasons

from .fake_kube import FakeServiceAccounts
from .fakes import FakeIdentityPort
from .objects import Life, reasons_of

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
IDENTITY = IdentityRef(SUBSCRIPTION, "rg-apps", "payments")
ISSUER = "https://oidc.cluster.example/abc"
NAMESPACE = "team-a"
SERVICE_ACCOUNTS = ("api", "worker", "other")
"""The ServiceAccounts of NAMESPACE unless a test says otherwise."""


def spec(**overrides: Any) -> dict[str, Any]:
    return {"identityRef": {"name": "payments"}, "serviceAccountRef": {"name": "api"}, **overrides}


def snapshot(
    port: FakeIdentityPort, *, ready: bool = True, deleting: bool = False, ref: IdentityRef = IDENTITY
) -> PrincipalSnapshot:
    identity = port.identity(ref)
    return PrincipalSnapshot(
        kind="UserAssignedIdentity",
        namespace=NAMESPACE,
        name=ref.name,
        ready=ready,
        deleting=deleting,
        principal_id=identity.principal_id if identity else None,
        client_id=identity.client_id if identity else None,
        tenant_id=identity.tenant_id if identity else None,
        resource_id=identity.id if identity else None,
    )


def cluster_issuer(configured: str | None = ISSUER) -> ClusterIssuer:
    return ClusterIssuer(configured)


def existing_accounts() -> FakeServiceAccounts:
    return FakeServiceAccounts(*((NAMESPACE, name) for name in SERVICE_ACCOUNTS))


def credential_object(
    port: FakeIdentityPort,
    body: Mapping[str, Any],
    name: str = "api",
    *,
    issuer: ClusterIssuer | None = None,
    accounts: FakeServiceAccounts | None = None,
) -> Life:
    accounts = existing_accounts() if accounts is None else accounts
    hooks = FederatedIdentityCredentialHooks(
        port, accounts, issuer=cluster_issuer() if issuer is None else issuer
    )
    return Life(
        hooks, body, name=name, namespace=NAMESPACE, writes=lambda: len(port.writes) + len(accounts.writes)
    )


@pytest.fixture
def port() -> FakeIdentityPort:
    fake = FakeIdentityPort()
    fake.put_identity_directly(IDENTITY, location="westeurope", tags={})
    return fake


def test_creates_the_credential_for_a_service_account_with_the_cluster_issuer(port: FakeIdentityPort) -> None:
    obj = credential_object(port, spec())
    result = obj.reconcile_twice(identity=snapshot(port))
    assert result.ready
    [credential] = port.credentials(IDENTITY)
    assert credential.name == "api"
    assert credential.issuer == ISSUER
    assert credential.subject == "system:serviceaccount:team-a:api"
    assert credential.audiences == ("api://AzureADTokenExchange",)
    assert obj.status["id"] == credential.id
    assert obj.status["identityId"] == IDENTITY.id
    assert obj.status["subject"] == credential.subject
    (created,) = result.changes
    assert created.reason == outcome.CREATED
    assert "'api'" in created.message
    assert "'payments'" in created.message


def test_explicit_issuer_subject_audiences_and_name(port: FakeIdentityPort) -> None:
    obj = credential_object(
        port,
        {
            "identityRef": {"name": "payments"},
            "issuer": "https://token.actions.githubusercontent.com",
            "subject": "repo:org/app:ref:refs/heads/main",
            "audiences": ["api://custom"],
            "azureName": "github-main",
        },
    )
    result = obj.reconcile_twice(identity=snapshot(port))
    assert result.ready
    assert reasons_of(result.changes) == [outcome.CREATED]
    [credential] = port.credentials(IDENTITY)
    assert (credential.name, credential.subject, credential.audiences) == (
        "github-main",
        "repo:org/app:ref:refs/heads/main",
        ("api://custom",),
    )


def test_spec_change_updates_in_place(port: FakeIdentityPort) -> None:
    obj = credential_object(port, spec())
    obj.reconcile(identity=snapshot(port))
    obj.spec = spec(serviceAccountRef={"name": "worker"})
    result = obj.reconcile_twice(identity=snapshot(port))
    assert result.ready
    [credential] = port.credentials(IDENTITY)
    assert credential.subject == "system:serviceaccount:team-a:worker"
    assert len(port.writes_of("create_or_update_federated_credential")) == 2
    assert reasons_of(result.changes) == [outcome.UPDATED], "a user's change, not drift"


def test_credential_changed_behind_our_back_is_repaired(port: FakeIdentityPort) -> None:
    obj = credential_object(port, spec())
    obj.reconcile(identity=snapshot(port))
    asyncio.run(
        port.create_or_update_federated_credential(
            IDENTITY, name="api", issuer=ISSUER, subject="someone-else", audiences=["x"]
        )
    )
    result = obj.reconcile_twice(identity=snapshot(port))
    assert result.ready
    assert port.credentials(IDENTITY)[0].subject == "system:serviceaccount:team-a:api"
    (repaired,) = result.changes
    assert repaired.reason == outcome.DRIFT_REPAIRED
    assert "changed in Azure" in repaired.message


def test_missing_identity_object_is_a_missing_reference(port: FakeIdentityPort) -> None:
    result = credential_object(port, spec()).reconcile_twice(identity=None)
    assert result.reason == reasons.REFERENCE_NOT_FOUND
    assert result.needs_user_action
    assert result.retry_after is None
    assert "payments" in result.message
    assert port.writes == []


@pytest.mark.parametrize(("ready", "deleting"), [(False, False), (True, True)])
def test_waits_for_an_identity_that_is_not_usable(
    port: FakeIdentityPort, ready: bool, deleting: bool
) -> None:
    result = credential_object(port, spec()).reconcile_twice(
        identity=snapshot(port, ready=ready, deleting=deleting)
    )
    assert result.reason == reasons.WAITING_FOR_IDENTITY
    assert not result.needs_user_action
    assert result.retry_after is None
    assert port.writes == []
    assert port.reads == []


def test_identity_recreated_with_a_new_principal_gets_the_credential_again(port: FakeIdentityPort) -> None:
    obj = credential_object(port, spec())
    stale = snapshot(port)
    obj.reconcile(identity=stale)
    port.delete_identity_directly(IDENTITY)
    gone = obj.reconcile(identity=stale)  # the identity object has not noticed the deletion yet
    assert gone.reason == reasons.WAITING_FOR_IDENTITY
    assert gone.retry_after
    assert gone.changes == ()
    port.put_identity_directly(IDENTITY, location="westeurope", tags={})
    result = obj.reconcile_twice(identity=snapshot(port))
    assert result.ready
    assert [c.name for c in port.credentials(IDENTITY)] == ["api"]
    assert reasons_of(result.changes) == [outcome.CREATED]


def test_duplicate_issuer_and_subject_is_a_conflict_naming_the_other(port: FakeIdentityPort) -> None:
    asyncio.run(
        port.create_or_update_federated_credential(
            IDENTITY,
            name="older",
            issuer=ISSUER,
            subject="system:serviceaccount:team-a:api",
            audiences=["api://AzureADTokenExchange"],
        )
    )
    writes = len(port.writes)
    result = credential_object(port, spec()).reconcile_twice(identity=snapshot(port))
    assert result.reason == reasons.CONFLICT
    assert "'older'" in result.message
    assert result.retry_after is None
    assert result.changes == ()
    assert port.writes[writes:] == []


def test_the_twenty_first_credential_is_refused_with_a_clear_reason(port: FakeIdentityPort) -> None:
    for index in range(20):
        asyncio.run(
            port.create_or_update_federated_credential(
                IDENTITY, name=f"fic-{index:02}", issuer=ISSUER, subject=f"s{index}", audiences=["a"]
            )
        )
    writes = len(port.writes)
    result = credential_object(port, spec()).reconcile_twice(identity=snapshot(port))
    assert result.reason == reasons.CREDENTIAL_LIMIT_REACHED
    assert result.needs_user_action
    assert "20" in result.message
    assert port.writes[writes:] == []


def test_azure_refusing_the_pair_maps_to_conflict(port: FakeIdentityPort) -> None:
    port.fail_next(
        "create_or_update_federated_credential",
        ArmError(status=400, code="BadRequest", message="Issuer and subject combination already exists."),
    )
    result = credential_object(port, spec()).reconcile(identity=snapshot(port))
    assert result.reason == reasons.CONFLICT
    assert result.changes == (), "nothing was written"


def test_concurrent_write_refusal_is_retried(port: FakeIdentityPort) -> None:
    port.fail_next(
        "create_or_update_federated_credential",
        ArmError(
            status=409,
            code="ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
            message="Too many Federated Identity Credentials are written concurrently",
        ),
    )
    obj = credential_object(port, spec())
    result = obj.reconcile(identity=snapshot(port))
    assert not result.ready
    assert result.retry_after
    assert not result.needs_user_action
    healed = obj.reconcile_twice(identity=snapshot(port))
    assert healed.ready
    assert reasons_of(healed.changes) == [outcome.CREATED]


@pytest.mark.parametrize(
    ("overrides", "issuer", "needle"),
    [
        ({"subject": "x"}, ISSUER, "not both"),
        ({"serviceAccountRef": None}, ISSUER, "spec.subject is required"),
        ({}, None, "IDENTITY_OPERATOR_OIDC_ISSUER is unset and the API server publishes none"),
        ({"issuer": "http://insecure.example"}, ISSUER, "https"),
        ({"audiences": []}, ISSUER, "spec.audiences"),
        ({"azureName": "a.b"}, ISSUER, "spec.azureName"),
        ({"identityRef": None}, ISSUER, "spec.identityRef"),
    ],
)
def test_bad_input_is_invalid_spec(
    port: FakeIdentityPort, overrides: dict[str, Any], issuer: str | None, needle: str
) -> None:
    obj = credential_object(port, spec(**overrides), issuer=cluster_issuer(issuer))
    result = obj.reconcile_twice(identity=snapshot(port))
    assert result.reason == reasons.INVALID_SPEC
    assert needle in result.message
    assert port.writes == []


def test_the_referenced_identity_is_read_from_the_raw_spec(port: FakeIdentityPort) -> None:
    hooks = FederatedIdentityCredentialHooks(port, existing_accounts(), issuer=cluster_issuer())
    assert hooks.reference(spec()) == ("UserAssignedIdentity", "payments")
    assert hooks.reference(spec(identityRef=None)) is None
    assert hooks.reference({"identityRef": "payments"}) is None
    assert hooks.reference({}) is None


def test_removal_deletes_only_its_own_credential(port: FakeIdentityPort) -> None:
    mine = credential_object(port, spec())
    theirs = credential_object(port, spec(serviceAccountRef={"name": "other"}), name="other")
    mine.reconcile(identity=snapshot(port))
    theirs.reconcile(identity=snapshot(port))
    removal = mine.remove(identity=snapshot(port))
    assert removal.done
    assert reasons_of(removal.result.changes) == [outcome.DELETED]
    assert [c.name for c in port.credentials(IDENTITY)] == ["other"]
    again = mine.remove(identity=snapshot(port))
    assert again.done
    assert again.result.changes == ()


def test_removal_also_works_while_the_identity_is_being_deleted(port: FakeIdentityPort) -> None:
    obj = credential_object(port, spec())
    obj.reconcile(identity=snapshot(port))
    assert obj.remove(identity=snapshot(port, ready=False, deleting=True)).done
    assert port.credentials(IDENTITY) == []


def test_removal_after_the_identity_is_gone_is_done(port: FakeIdentityPort) -> None:
    obj = credential_object(port, spec())
    obj.reconcile(identity=snapshot(port))
    port.delete_identity_directly(IDENTITY)
    # The identity object is gone too: the status says where the credential was written.
    removal = obj.remove(identity=None)
    assert removal.done
    assert removal.warning is None


def test_removal_without_the_identity_object_deletes_only_a_credential_trusting_what_the_spec_says(
    port: FakeIdentityPort,
) -> None:
    obj = credential_object(port, spec())
    obj.reconcile(identity=snapshot(port))
    asyncio.run(
        port.create_or_update_federated_credential(
            IDENTITY, name="api", issuer=ISSUER, subject="someone-else", audiences=["x"]
        )
    )
    kept = obj.remove(identity=None)
    assert kept.done
    assert kept.result.changes == ()
    assert [c.subject for c in port.credentials(IDENTITY)] == ["someone-else"]

    obj.reconcile(identity=snapshot(port))
    deleted = obj.remove(identity=None)
    assert deleted.done
    assert reasons_of(deleted.result.changes) == [outcome.DELETED]
    assert port.credentials(IDENTITY) == []


def test_removal_orphan_keeps_it(port: FakeIdentityPort) -> None:
    obj = credential_object(port, spec(deletionPolicy="Orphan"))
    obj.reconcile(identity=snapshot(port))
    writes = len(port.writes)
    assert obj.remove(identity=snapshot(port)).done
    assert len(port.credentials(IDENTITY)) == 1
    assert port.writes[writes:] == []


def test_removal_of_a_credential_never_written_touches_nothing(port: FakeIdentityPort) -> None:
    obj = credential_object(port, spec())
    obj.reconcile(identity=None)
    assert obj.remove(identity=None).done
    assert port.writes == []


def test_blocked_removal_retries_explains_and_yields_to_force_delete(port: FakeIdentityPort) -> None:
    obj = credential_object(port, spec())
    obj.reconcile(identity=snapshot(port))
    refusal = ArmError(status=403, code="AuthorizationFailed", message="no")
    port.fail_next("delete_federated_credential", refusal)
    blocked = obj.remove(identity=snapshot(port))
    assert not blocked.done
    assert blocked.result.reason == reasons.DELETION_BLOCKED
    assert blocked.result.retry_after == flow.DELETION_RETRY_SECONDS
    assert flow.FORCE_DELETE_ANNOTATION in blocked.result.message
    port.fail_next("delete_federated_credential", refusal)
    forced = obj.remove(identity=snapshot(port), annotations={flow.FORCE_DELETE_ANNOTATION: "true"})
    assert forced.done
    assert forced.warning is not None
    assert len(port.credentials(IDENTITY)) == 1


def test_removal_never_deletes_a_same_named_credential_it_never_wrote(port: FakeIdentityPort) -> None:
    asyncio.run(
        port.create_or_update_federated_credential(
            IDENTITY, name="api", issuer="https://elsewhere.example", subject="theirs", audiences=["a"]
        )
    )
    obj = credential_object(port, spec())  # deleted before it ever reconciled: nothing recorded
    assert obj.remove(identity=snapshot(port)).done
    assert [c.subject for c in port.credentials(IDENTITY)] == ["theirs"]


def test_removal_after_a_crash_before_the_status_write_deletes_the_matching_credential(
    port: FakeIdentityPort,
) -> None:
    obj = credential_object(port, spec())
    obj.reconcile(identity=snapshot(port))
    obj.status = {}  # the status write never happened
    assert obj.remove(identity=snapshot(port)).done
    assert port.credentials(IDENTITY) == []


# --- the cluster's side -----------------------------------------------------------------------------------


def test_the_default_issuer_is_the_one_the_cluster_publishes_when_none_is_configured(
    port: FakeIdentityPort,
) -> None:
    issuer = cluster_issuer(None)
    obj = credential_object(port, spec(), issuer=issuer)
    assert obj.reconcile(identity=snapshot(port)).reason == reasons.INVALID_SPEC
    issuer.discovered = "https://discovered.example/issuer"  # found at start-up, after the hooks were built
    result = obj.reconcile_twice(identity=snapshot(port))
    assert result.ready
    [credential] = port.credentials(IDENTITY)
    assert credential.issuer == "https://discovered.example/issuer"


def test_a_configured_issuer_wins_over_the_published_one(port: FakeIdentityPort) -> None:
    issuer = cluster_issuer(ISSUER)
    issuer.discovered = "https://discovered.example/issuer"
    assert credential_object(port, spec(), issuer=issuer).reconcile_twice(identity=snapshot(port)).ready
    assert port.credentials(IDENTITY)[0].issuer == ISSUER


def test_a_missing_service_account_is_written_reported_retried_and_announced_once_it_exists(
    port: FakeIdentityPort,
) -> None:
    accounts = FakeServiceAccounts()
    obj = credential_object(port, spec(), accounts=accounts)
    missing = obj.reconcile_twice(identity=snapshot(port))
    assert missing.reason == reasons.SERVICE_ACCOUNT_NOT_FOUND
    assert missing.needs_user_action
    assert missing.retry_after == SERVICE_ACCOUNT_RETRY_SECONDS
    assert "is in Azure" in missing.message
    assert "no pod can use it until ServiceAccount team-a/api exists" in missing.message
    assert reasons_of(missing.changes) == [outcome.CREATED], "Azure holds it all the same"
    [credential] = port.credentials(IDENTITY)
    assert credential.subject == "system:serviceaccount:team-a:api"
    assert obj.status["id"] == credential.id, "the status records what was written, for the removal"
    assert accounts.reads == [(NAMESPACE, "api")] * 2

    accounts.create(NAMESPACE, "api")
    writes = len(port.writes)
    found = obj.reconcile_twice(identity=snapshot(port))
    assert found.ready
    (announced,) = found.changes
    assert announced.reason == SERVICE_ACCOUNT_FOUND
    assert announced.message.startswith("ServiceAccount team-a/api exists now")
    assert port.writes[writes:] == [], "nothing more to write in Azure"


def test_a_service_account_deleted_later_is_reported_again(port: FakeIdentityPort) -> None:
    accounts = existing_accounts()
    obj = credential_object(port, spec(), accounts=accounts)
    assert obj.reconcile(identity=snapshot(port)).ready
    accounts.delete(NAMESPACE, "api")
    result = obj.reconcile_twice(identity=snapshot(port))
    assert result.reason == reasons.SERVICE_ACCOUNT_NOT_FOUND
    assert result.changes == ()


def test_a_service_account_of_another_spec_is_not_announced_as_found(port: FakeIdentityPort) -> None:
    obj = credential_object(port, spec(serviceAccountRef={"name": "missing"}))
    assert obj.reconcile(identity=snapshot(port)).reason == reasons.SERVICE_ACCOUNT_NOT_FOUND
    obj.spec = spec(serviceAccountRef={"name": "worker"})
    result = obj.reconcile_twice(identity=snapshot(port))
    assert result.ready
    assert reasons_of(result.changes) == [outcome.UPDATED]


def test_a_raw_subject_is_not_checked_against_service_accounts(port: FakeIdentityPort) -> None:
    accounts = FakeServiceAccounts()
    obj = credential_object(
        port, spec(serviceAccountRef=None, subject="system:serviceaccount:team-a:nobody"), accounts=accounts
    )
    assert obj.reconcile_twice(identity=snapshot(port)).ready
    assert accounts.reads == []


def test_a_service_account_that_cannot_be_read_is_progress_on_a_new_spec(port: FakeIdentityPort) -> None:
    accounts = existing_accounts()
    accounts.fail_next("read_service_account", KubernetesError(503, "etcd is unavailable"), times=2)
    obj = credential_object(port, spec(), accounts=accounts)
    result = obj.reconcile(identity=snapshot(port))
    assert result.reason == reasons.OPERATOR_ERROR
    assert not result.needs_user_action
    assert result.retry_after
    assert "is in Azure" in result.message
    assert "team-a/api" in result.message
    assert "503" in result.message
    assert reasons_of(result.changes) == [outcome.CREATED]
    assert len(port.credentials(IDENTITY)) == 1
    again = obj.reconcile(identity=snapshot(port))
    assert again.reason == reasons.OPERATOR_ERROR
    assert again.changes == ()
    assert obj.reconcile_twice(identity=snapshot(port)).ready


def test_a_drift_check_that_cannot_read_the_service_account_keeps_ready(port: FakeIdentityPort) -> None:
    accounts = existing_accounts()
    obj = credential_object(port, spec(), accounts=accounts)
    assert obj.reconcile(identity=snapshot(port)).ready
    status = obj.status
    accounts.fail_next("read_service_account", KubernetesError(None, "connection refused"))
    kept = obj.reconcile(identity=snapshot(port))
    assert kept.ready
    assert kept.retry_after == SERVICE_ACCOUNT_RETRY_SECONDS, "looked at again soon"
    assert kept.changes == ()
    assert obj.status == status, "no status write"


def test_an_issuer_other_than_the_clusters_for_a_service_account_is_a_mismatch(
    port: FakeIdentityPort,
) -> None:
    accounts = existing_accounts()
    obj = credential_object(port, spec(issuer="https://oidc.elsewhere.example/"), accounts=accounts)
    result = obj.reconcile_twice(identity=snapshot(port))
    assert result.reason == reasons.ISSUER_MISMATCH
    assert result.needs_user_action
    assert result.retry_after is None
    assert "'https://oidc.elsewhere.example/'" in result.message
    assert repr(ISSUER) in result.message
    assert "no token of this cluster will ever match it" in result.message
    assert reasons_of(result.changes) == [outcome.CREATED]
    assert port.credentials(IDENTITY)[0].issuer == "https://oidc.elsewhere.example/"
    assert accounts.reads == []


def test_a_trailing_slash_is_another_issuer_to_azure(port: FakeIdentityPort) -> None:
    result = credential_object(port, spec(issuer=ISSUER + "/")).reconcile(identity=snapshot(port))
    assert result.reason == reasons.ISSUER_MISMATCH


def test_without_a_known_cluster_issuer_nothing_is_a_mismatch(port: FakeIdentityPort) -> None:
    obj = credential_object(port, spec(issuer="https://oidc.elsewhere.example"), issuer=cluster_issuer(None))
    assert obj.reconcile_twice(identity=snapshot(port)).ready


@pytest.mark.parametrize(
    "overrides",
    [
        {
            "issuer": "https://token.actions.githubusercontent.com",
            "subject": "repo:org/app:ref:refs/heads/main",
        },
        {
            "issuer": "https://oidc.other-cluster.example",
            "subject": "system:serviceaccount:kube-system:admin",
        },
        {"subject": "system:serviceaccount:team-a:api"},
        {"subject": "system:serviceaccount:kube-system"},
    ],
    ids=["github", "another-cluster", "own-namespace", "not-a-service-account"],
)
def test_raw_subjects_that_let_no_other_namespace_in_are_written(
    port: FakeIdentityPort, overrides: dict[str, str]
) -> None:
    obj = credential_object(port, spec(serviceAccountRef=None, **overrides))
    assert obj.reconcile_twice(identity=snapshot(port)).ready
    assert port.credentials(IDENTITY)[0].subject == overrides["subject"]


@pytest.mark.parametrize(
    ("overrides", "issuer"),
    [
        ({}, cluster_issuer()),
        ({"issuer": ISSUER}, cluster_issuer()),
        ({"issuer": "https://OIDC.cluster.example/abc/"}, cluster_issuer()),
        ({"subject": "System:ServiceAccount:kube-system:admin"}, cluster_issuer()),
        ({}, ClusterIssuer(None)),
    ],
    ids=["defaulted", "named", "spelled-otherwise", "prefix-case", "discovered"],
)
def test_a_subject_naming_another_namespaces_service_account_is_forbidden(
    port: FakeIdentityPort, overrides: dict[str, str], issuer: ClusterIssuer
) -> None:
    if issuer.value is None:
        issuer.discovered = ISSUER
    body = spec(serviceAccountRef=None, **{"subject": "system:serviceaccount:kube-system:admin", **overrides})
    result = credential_object(port, body, issuer=issuer).reconcile_twice(identity=snapshot(port))
    assert result.reason == reasons.FORBIDDEN_SUBJECT
    assert result.needs_user_action
    assert result.retry_after is None
    assert "kube-system/admin" in result.message
    assert "nothing is written to Azure" in result.message
    assert port.writes == []
    assert port.reads == [], "refused before any ARM call"


def test_a_forbidden_subject_is_refused_even_without_its_identity(port: FakeIdentityPort) -> None:
    body = spec(serviceAccountRef=None, subject="system:serviceaccount:kube-system:admin")
    result = credential_object(port, body).reconcile(identity=None)
    assert result.reason == reasons.FORBIDDEN_SUBJECT


def test_a_forbidden_subject_without_a_known_cluster_issuer_needs_a_named_issuer_that_is_not_checked(
    port: FakeIdentityPort,
) -> None:
    body = spec(
        serviceAccountRef=None, subject="system:serviceaccount:kube-system:admin", issuer="https://x.example"
    )
    assert credential_object(port, body, issuer=cluster_issuer(None)).reconcile(identity=snapshot(port)).ready


def test_a_credential_changed_to_a_forbidden_subject_keeps_what_it_wrote_and_removes_it(
    port: FakeIdentityPort,
) -> None:
    obj = credential_object(port, spec())
    assert obj.reconcile(identity=snapshot(port)).ready
    obj.spec = spec(serviceAccountRef=None, subject="system:serviceaccount:kube-system:admin")
    writes = len(port.writes)
    assert obj.reconcile_twice(identity=snapshot(port)).reason == reasons.FORBIDDEN_SUBJECT
    assert port.writes[writes:] == []
    assert [c.subject for c in port.credentials(IDENTITY)] == ["system:serviceaccount:team-a:api"]
    removal = obj.remove(identity=snapshot(port))
    assert removal.done
    assert reasons_of(removal.result.changes) == [outcome.DELETED]
    assert port.credentials(IDENTITY) == []


# --- drift checks -----------------------------------------------------------------------------------------


def test_the_drift_check_reads_each_service_account_once_and_flags_a_missing_one(
    port: FakeIdentityPort,
) -> None:
    accounts = existing_accounts()
    issuer = cluster_issuer()
    hooks = FederatedIdentityCredentialHooks(port, accounts, issuer=issuer)
    orders = IdentityRef(SUBSCRIPTION, "rg-apps", "orders")
    port.put_identity_directly(orders, location="westeurope", tags={})
    lives = []
    for name, body, ref in (
        ("api", spec(), IDENTITY),
        ("orders-api", spec(identityRef={"name": "orders"}), orders),
        ("worker", spec(serviceAccountRef={"name": "worker"}), IDENTITY),
    ):
        life = Life(hooks, body, name=name, namespace=NAMESPACE, writes=lambda: len(port.writes))
        life.identity = snapshot(port, ref=ref)
        assert life.reconcile().ready
        lives.append(life)
    accounts.reads.clear()
    verdicts = dict(asyncio.run(hooks.survey([life.state() for life in lives])))
    assert not any(v.drifted or v.failed for v in verdicts.values()), verdicts
    assert sorted(accounts.reads) == [(NAMESPACE, "api"), (NAMESPACE, "worker")]

    accounts.delete(NAMESPACE, "worker")
    lists = len(port.reads)
    verdicts = dict(asyncio.run(hooks.survey([life.state() for life in lives])))
    assert {key for key, v in verdicts.items() if v.drifted} == {f"{NAMESPACE}/worker"}
    assert "team-a/worker" in verdicts[f"{NAMESPACE}/worker"].why
    assert len(port.reads) - lists == 2, "still one ARM list per identity"


def test_a_drift_check_that_cannot_read_a_service_account_keeps_the_status(port: FakeIdentityPort) -> None:
    accounts = existing_accounts()
    hooks = FederatedIdentityCredentialHooks(port, accounts, issuer=cluster_issuer())
    life = Life(hooks, spec(), name="api", namespace=NAMESPACE, writes=lambda: len(port.writes))
    life.identity = snapshot(port)
    assert life.reconcile().ready
    accounts.fail_next("read_service_account", KubernetesError(403, "forbidden"))
    reads = len(port.reads)
    verdict = dict(asyncio.run(hooks.survey([life.state()])))[f"{NAMESPACE}/api"]
    assert not verdict.drifted
    assert verdict.failed == reasons.OPERATOR_ERROR
    assert len(port.reads) == reads, "no ARM read for a credential whose check already failed"


def test_the_drift_check_flags_credentials_that_trust_the_wrong_tokens(port: FakeIdentityPort) -> None:
    """Written while the cluster's issuer was unknown: once it is known, a full reconcile reports them."""
    issuer = ClusterIssuer(None)
    hooks = FederatedIdentityCredentialHooks(port, existing_accounts(), issuer=issuer)
    lives = []
    for name, body in (
        ("mismatch", spec(issuer="https://oidc.elsewhere.example")),
        (
            "forbidden",
            spec(serviceAccountRef=None, subject="system:serviceaccount:kube-system:admin", issuer=ISSUER),
        ),
    ):
        life = Life(hooks, body, name=name, namespace=NAMESPACE, writes=lambda: len(port.writes))
        life.identity = snapshot(port)
        assert life.reconcile().ready, name
        lives.append(life)
    issuer.discovered = ISSUER
    verdicts = dict(asyncio.run(hooks.survey([life.state() for life in lives])))
    assert all(v.drifted for v in verdicts.values()), verdicts
