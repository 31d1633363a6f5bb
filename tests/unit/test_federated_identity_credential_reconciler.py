"""`FederatedIdentityCredentialHooks` run by the generic flow, with plain data: waiting for the referenced
identity (as `obj.identity`, with the IDs Azure reported), create, update, drift, the identity re-created,
Azure's limits, bad input, the changes each pass reports, and removal (deletion policy, the identity gone,
refused, never written, a credential someone else wrote). Every reconcile scenario runs a second time,
which must write nothing and report no change."""

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
    FederatedIdentityCredentialHooks,
)
from azure_identity_operator.status import outcome, reasons

from .fakes import FakeIdentityPort
from .objects import Life, reasons_of

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


def credential_object(
    port: FakeIdentityPort, body: Mapping[str, Any], name: str = "api", *, default_issuer: str | None = ISSUER
) -> Life:
    hooks = FederatedIdentityCredentialHooks(port, default_issuer=default_issuer)
    return Life(hooks, body, name=name, namespace=NAMESPACE, writes=lambda: len(port.writes))


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
    obj = credential_object(port, spec(**overrides), default_issuer=default_issuer)
    result = obj.reconcile_twice(identity=snapshot(port))
    assert result.reason == reasons.INVALID_SPEC
    assert needle in result.message
    assert port.writes == []


def test_the_referenced_identity_is_read_from_the_raw_spec(port: FakeIdentityPort) -> None:
    hooks = FederatedIdentityCredentialHooks(port, default_issuer=ISSUER)
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
