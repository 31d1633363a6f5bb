"""The FederatedIdentityCredential reconciler with plain data: waiting for the identity, create, update,
the identity re-created, Azure's limits, bad input, cleanup. A second run must write nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.arm.identities import IdentityRef
from azure_identity_operator.reconcilers import federated_identity_credentials as reconciler
from azure_identity_operator.status import outcome, reasons, report

from .fakes import FakeIdentityPort

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
IDENTITY = IdentityRef(SUBSCRIPTION, "rg-apps", "payments")
ISSUER = "https://oidc.cluster.example/abc"
NAMESPACE = "team-a"


def spec(**overrides: Any) -> dict[str, Any]:
    return {"identityRef": {"name": "payments"}, "serviceAccountRef": {"name": "api"}, **overrides}


def snapshot(port: FakeIdentityPort, *, ready: bool = True, deleting: bool = False) -> PrincipalSnapshot:
    identity = port.identity(IDENTITY)
    return PrincipalSnapshot(
        kind="UserAssignedIdentity",
        namespace=NAMESPACE,
        name="payments",
        ready=ready,
        deleting=deleting,
        principal_id=identity.principal_id if identity else None,
        client_id=identity.client_id if identity else None,
        tenant_id=identity.tenant_id if identity else None,
        resource_id=identity.id if identity else None,
    )


class Object:
    def __init__(self, port: FakeIdentityPort, spec: Mapping[str, Any], name: str = "api") -> None:
        self.port = port
        self.spec = dict(spec)
        self.name = name
        self.status: dict[str, Any] = {}
        self.default_issuer: str | None = ISSUER

    def reconcile(self, identity: PrincipalSnapshot | None) -> outcome.Outcome:
        result = asyncio.run(
            reconciler.reconcile(
                self.port,
                self.spec,
                object_name=self.name,
                namespace=NAMESPACE,
                default_issuer=self.default_issuer,
                identity=identity,
            )
        )
        self.status = report.next_status(self.status, result, generation=1, now="2026-01-01T00:00:00Z")
        return result

    def reconcile_twice(self, identity: PrincipalSnapshot | None) -> outcome.Outcome:
        first = self.reconcile(identity)
        writes = len(self.port.writes)
        second = self.reconcile(identity)
        assert self.port.writes[writes:] == [], "the second reconcile must write nothing"
        assert second == first
        return first

    def cleanup(self, identity: PrincipalSnapshot | None) -> outcome.Outcome | None:
        return asyncio.run(
            reconciler.cleanup(
                self.port,
                self.spec,
                object_name=self.name,
                namespace=NAMESPACE,
                default_issuer=self.default_issuer,
                identity=identity,
                status=self.status,
            )
        )


@pytest.fixture
def port() -> FakeIdentityPort:
    fake = FakeIdentityPort()
    fake.put_identity_directly(IDENTITY, location="westeurope", tags={})
    return fake


def test_creates_the_credential_for_a_service_account_with_the_cluster_issuer(port: FakeIdentityPort) -> None:
    obj = Object(port, spec())
    result = obj.reconcile_twice(snapshot(port))
    assert result.ready
    [credential] = port.credentials(IDENTITY)
    assert credential.name == "api"
    assert credential.issuer == ISSUER
    assert credential.subject == "system:serviceaccount:team-a:api"
    assert credential.audiences == ("api://AzureADTokenExchange",)
    assert obj.status["id"] == credential.id
    assert obj.status["identityId"] == IDENTITY.id
    assert obj.status["subject"] == credential.subject


def test_explicit_issuer_subject_audiences_and_name(port: FakeIdentityPort) -> None:
    obj = Object(
        port,
        {
            "identityRef": {"name": "payments"},
            "issuer": "https://token.actions.githubusercontent.com",
            "subject": "repo:org/app:ref:refs/heads/main",
            "audiences": ["api://custom"],
            "azureName": "github-main",
        },
    )
    assert obj.reconcile_twice(snapshot(port)).ready
    [credential] = port.credentials(IDENTITY)
    assert (credential.name, credential.subject, credential.audiences) == (
        "github-main",
        "repo:org/app:ref:refs/heads/main",
        ("api://custom",),
    )


def test_spec_change_updates_in_place(port: FakeIdentityPort) -> None:
    obj = Object(port, spec())
    obj.reconcile(snapshot(port))
    obj.spec = spec(serviceAccountRef={"name": "worker"})
    assert obj.reconcile_twice(snapshot(port)).ready
    [credential] = port.credentials(IDENTITY)
    assert credential.subject == "system:serviceaccount:team-a:worker"
    assert len(port.writes_of("create_or_update_federated_credential")) == 2


def test_credential_changed_behind_our_back_is_repaired(port: FakeIdentityPort) -> None:
    obj = Object(port, spec())
    obj.reconcile(snapshot(port))
    asyncio.run(
        port.create_or_update_federated_credential(
            IDENTITY, name="api", issuer=ISSUER, subject="someone-else", audiences=["x"]
        )
    )
    assert obj.reconcile_twice(snapshot(port)).ready
    assert port.credentials(IDENTITY)[0].subject == "system:serviceaccount:team-a:api"


def test_missing_identity_object_is_a_missing_reference(port: FakeIdentityPort) -> None:
    result = Object(port, spec()).reconcile_twice(None)
    assert result.reason == reasons.REFERENCE_NOT_FOUND
    assert result.retry_after is None
    assert "payments" in result.message
    assert port.writes == []


@pytest.mark.parametrize(("ready", "deleting"), [(False, False), (True, True)])
def test_waits_for_an_identity_that_is_not_usable(
    port: FakeIdentityPort, ready: bool, deleting: bool
) -> None:
    result = Object(port, spec()).reconcile_twice(snapshot(port, ready=ready, deleting=deleting))
    assert result.reason == reasons.WAITING_FOR_IDENTITY
    assert result.retry_after is None
    assert port.writes == []


def test_identity_recreated_with_a_new_principal_gets_the_credential_again(port: FakeIdentityPort) -> None:
    obj = Object(port, spec())
    stale = snapshot(port)
    obj.reconcile(stale)
    port.delete_identity_directly(IDENTITY)
    gone = obj.reconcile(stale)  # the identity object has not noticed the deletion yet
    assert gone.reason == reasons.WAITING_FOR_IDENTITY
    assert gone.retry_after
    port.put_identity_directly(IDENTITY, location="westeurope", tags={})
    assert obj.reconcile_twice(snapshot(port)).ready
    assert [c.name for c in port.credentials(IDENTITY)] == ["api"]


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
    result = Object(port, spec()).reconcile_twice(snapshot(port))
    assert result.reason == reasons.CONFLICT
    assert "'older'" in result.message
    assert result.retry_after is None
    assert port.writes[writes:] == []


def test_the_twenty_first_credential_is_refused_with_a_clear_reason(port: FakeIdentityPort) -> None:
    for index in range(20):
        asyncio.run(
            port.create_or_update_federated_credential(
                IDENTITY, name=f"fic-{index:02}", issuer=ISSUER, subject=f"s{index}", audiences=["a"]
            )
        )
    writes = len(port.writes)
    result = Object(port, spec()).reconcile_twice(snapshot(port))
    assert result.reason == reasons.CREDENTIAL_LIMIT_REACHED
    assert "20" in result.message
    assert port.writes[writes:] == []


def test_azure_refusing_the_pair_maps_to_conflict(port: FakeIdentityPort) -> None:
    port.fail_next(
        "create_or_update_federated_credential",
        ArmError(status=400, code="BadRequest", message="Issuer and subject combination already exists."),
    )
    result = Object(port, spec()).reconcile(snapshot(port))
    assert result.reason == reasons.CONFLICT


def test_concurrent_write_refusal_is_retried(port: FakeIdentityPort) -> None:
    port.fail_next(
        "create_or_update_federated_credential",
        ArmError(
            status=409,
            code="ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
            message="Too many Federated Identity Credentials are written concurrently",
        ),
    )
    obj = Object(port, spec())
    result = obj.reconcile(snapshot(port))
    assert not result.ready
    assert result.retry_after
    assert obj.reconcile_twice(snapshot(port)).ready


@pytest.mark.parametrize(
    ("overrides", "default_issuer", "needle"),
    [
        ({"subject": "x"}, ISSUER, "not both"),
        ({"serviceAccountRef": None}, ISSUER, "spec.subject is required"),
        ({}, None, "IDENTITY_OPERATOR_OIDC_ISSUER"),
        ({"issuer": "http://insecure.example"}, ISSUER, "https"),
        ({"audiences": []}, ISSUER, "spec.audiences"),
        ({"azureName": "a.b"}, ISSUER, "spec.azureName"),
        ({"identityRef": None}, ISSUER, "spec.identityRef"),
    ],
)
def test_bad_input_is_invalid_spec(
    port: FakeIdentityPort, overrides: dict[str, Any], default_issuer: str | None, needle: str
) -> None:
    obj = Object(port, spec(**overrides))
    obj.default_issuer = default_issuer
    result = obj.reconcile_twice(snapshot(port))
    assert result.reason == reasons.INVALID_SPEC
    assert needle in result.message
    assert port.writes == []


def test_cleanup_deletes_only_its_own_credential(port: FakeIdentityPort) -> None:
    mine = Object(port, spec())
    theirs = Object(port, spec(serviceAccountRef={"name": "other"}), name="other")
    mine.reconcile(snapshot(port))
    theirs.reconcile(snapshot(port))
    assert mine.cleanup(snapshot(port)) is None
    assert [c.name for c in port.credentials(IDENTITY)] == ["other"]
    assert mine.cleanup(snapshot(port)) is None


def test_cleanup_after_the_identity_is_gone_is_done(port: FakeIdentityPort) -> None:
    obj = Object(port, spec())
    obj.reconcile(snapshot(port))
    port.delete_identity_directly(IDENTITY)
    assert obj.cleanup(None) is None  # the identity object is gone too: status says where it wrote


def test_cleanup_orphan_keeps_it(port: FakeIdentityPort) -> None:
    obj = Object(port, spec(deletionPolicy="Orphan"))
    obj.reconcile(snapshot(port))
    assert obj.cleanup(snapshot(port)) is None
    assert len(port.credentials(IDENTITY)) == 1


def test_cleanup_of_a_credential_never_written_touches_nothing(port: FakeIdentityPort) -> None:
    obj = Object(port, spec())
    obj.reconcile(None)
    assert obj.cleanup(None) is None
    assert port.writes == []


def test_blocked_cleanup_retries_and_explains(port: FakeIdentityPort) -> None:
    obj = Object(port, spec())
    obj.reconcile(snapshot(port))
    port.fail_next(
        "delete_federated_credential", ArmError(status=403, code="AuthorizationFailed", message="no")
    )
    blocked = obj.cleanup(snapshot(port))
    assert blocked is not None
    assert blocked.reason == reasons.DELETION_BLOCKED
    assert blocked.retry_after


def test_cleanup_never_deletes_a_same_named_credential_it_never_wrote(port: FakeIdentityPort) -> None:
    asyncio.run(
        port.create_or_update_federated_credential(
            IDENTITY, name="api", issuer="https://elsewhere.example", subject="theirs", audiences=["a"]
        )
    )
    obj = Object(port, spec())  # deleted before it ever reconciled: nothing recorded
    assert obj.cleanup(snapshot(port)) is None
    assert [c.subject for c in port.credentials(IDENTITY)] == ["theirs"]


def test_cleanup_after_a_crash_before_the_status_write_deletes_the_matching_credential(
    port: FakeIdentityPort,
) -> None:
    obj = Object(port, spec())
    obj.reconcile(snapshot(port))
    obj.status = {}  # the status write never happened
    assert obj.cleanup(snapshot(port)) is None
    assert port.credentials(IDENTITY) == []
