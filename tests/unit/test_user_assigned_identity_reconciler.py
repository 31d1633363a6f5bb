"""The UserAssignedIdentity reconciler with plain data: create, adopt, converge tags, drift, bad input,
cleanup by deletion policy. Every scenario runs a second time and must write nothing then."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.arm.identities import IdentityRef
from azure_identity_operator.reconcilers import user_assigned_identities as reconciler
from azure_identity_operator.status import outcome, reasons, report

from .fakes import TENANT_ID, FakeIdentityPort

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
REF = IdentityRef(SUBSCRIPTION, "rg-apps", "payments")


def spec(**overrides: Any) -> dict[str, Any]:
    return {"resourceGroup": "rg-apps", "location": "westeurope", "tags": {"team": "pay"}, **overrides}


class Object:
    """A UserAssignedIdentity as the API server holds it: its spec and the status reconciles report."""

    def __init__(self, port: FakeIdentityPort, spec: Mapping[str, Any], name: str = "payments") -> None:
        self.port = port
        self.spec = dict(spec)
        self.name = name
        self.status: dict[str, Any] = {}

    def reconcile(self) -> outcome.Outcome:
        result = asyncio.run(
            reconciler.reconcile(
                self.port,
                self.spec,
                object_name=self.name,
                default_subscription_id=SUBSCRIPTION,
                default_tenant_id=TENANT_ID,
                status=self.status,
            )
        )
        self.status = report.next_status(self.status, result, generation=1, now="2026-01-01T00:00:00Z")
        return result

    def reconcile_twice(self) -> outcome.Outcome:
        first = self.reconcile()
        writes = len(self.port.writes)
        second = self.reconcile()
        assert self.port.writes[writes:] == [], "the second reconcile must write nothing"
        assert second == first
        return first

    def cleanup(self) -> outcome.Outcome | None:
        return asyncio.run(
            reconciler.cleanup(
                self.port,
                self.spec,
                object_name=self.name,
                default_subscription_id=SUBSCRIPTION,
                status=self.status,
            )
        )


def test_creates_the_identity_and_reports_its_ids() -> None:
    port = FakeIdentityPort()
    obj = Object(port, spec())
    result = obj.reconcile_twice()
    identity = port.identity(REF)
    assert identity is not None
    assert result.ready
    assert result.reason == reasons.SUCCEEDED
    assert obj.status["id"] == REF.id
    assert obj.status["principalId"] == identity.principal_id
    assert obj.status["clientId"] == identity.client_id
    assert obj.status["tenantId"] == TENANT_ID
    assert obj.status["adopted"] is False
    assert identity.tags == {"team": "pay"}
    assert port.writes_of("create_or_update_identity") == [REF.id]


def test_azure_name_and_subscription_override_the_defaults() -> None:
    port = FakeIdentityPort()
    other = "11111111-2222-3333-4444-555555555555"
    obj = Object(port, spec(azureName="id-payments-prod", subscriptionId=other))
    obj.reconcile_twice()
    assert port.identity(IdentityRef(other, "rg-apps", "id-payments-prod")) is not None


def test_adopts_an_existing_identity_keeping_its_ids() -> None:
    port = FakeIdentityPort()
    existing = port.put_identity_directly(REF, location="westeurope", tags={"team": "pay"})
    obj = Object(port, spec())
    result = obj.reconcile_twice()
    assert result.ready
    assert obj.status["adopted"] is True
    assert obj.status["principalId"] == existing.principal_id
    assert port.writes == []
    assert "adopted" in result.message


def test_converges_tags_with_a_patch_and_nothing_else() -> None:
    port = FakeIdentityPort()
    obj = Object(port, spec())
    obj.reconcile()
    principal = obj.status["principalId"]
    obj.spec = spec(tags={"team": "pay", "env": "prod"})
    obj.reconcile_twice()
    assert port.identity(REF).tags == {"team": "pay", "env": "prod"}  # type: ignore[union-attr]
    assert port.writes_of("update_identity_tags") == [REF.id]
    assert len(port.writes_of("create_or_update_identity")) == 1
    assert obj.status["principalId"] == principal


def test_tags_changed_behind_our_back_are_repaired() -> None:
    port = FakeIdentityPort()
    obj = Object(port, spec())
    obj.reconcile()
    asyncio.run(port.update_identity_tags(REF, tags={"team": "someone-else"}))
    obj.reconcile_twice()
    assert port.identity(REF).tags == {"team": "pay"}  # type: ignore[union-attr]


def test_identity_deleted_behind_our_back_is_recreated_with_new_ids_reported() -> None:
    port = FakeIdentityPort()
    obj = Object(port, spec())
    obj.reconcile()
    old_principal = obj.status["principalId"]
    port.delete_identity_directly(REF)
    result = obj.reconcile_twice()
    assert result.ready
    assert obj.status["principalId"] != old_principal
    assert obj.status["principalId"] == port.identity(REF).principal_id  # type: ignore[union-attr]
    assert obj.status["adopted"] is False


def test_an_identity_in_another_location_is_a_conflict_not_a_move() -> None:
    port = FakeIdentityPort()
    port.put_identity_directly(REF, location="eastus", tags={})
    result = Object(port, spec()).reconcile_twice()
    assert not result.ready
    assert result.reason == reasons.CONFLICT
    assert result.retry_after is None
    assert "eastus" in result.message
    assert port.writes == []


def test_location_spelling_does_not_count_as_a_difference() -> None:
    port = FakeIdentityPort()
    port.put_identity_directly(REF, location="westeurope", tags={"team": "pay"})
    assert Object(port, spec(location="West Europe")).reconcile_twice().ready


@pytest.mark.parametrize(
    ("name", "overrides", "needle"),
    [
        ("my.identity", {}, "metadata.name"),
        ("payments", {"azureName": "x"}, "spec.azureName"),
        ("payments", {"resourceGroup": "bad/group"}, "spec.resourceGroup"),
        ("payments", {"subscriptionId": "not-a-guid"}, "spec.subscriptionId"),
        ("payments", {"location": None}, "spec.location"),
        ("payments", {"deletionPolicy": "Keep"}, "spec.deletionPolicy"),
    ],
)
def test_bad_input_is_invalid_spec_without_any_azure_call(
    name: str, overrides: dict[str, Any], needle: str
) -> None:
    port = FakeIdentityPort()
    result = Object(port, spec(**overrides), name=name).reconcile_twice()
    assert not result.ready
    assert result.reason == reasons.INVALID_SPEC
    assert needle in result.message
    assert result.retry_after is None
    assert port.writes == []
    assert port.reads == []


def test_missing_resource_group_needs_the_user() -> None:
    port = FakeIdentityPort(any_group=False)
    result = Object(port, spec()).reconcile_twice()
    assert result.reason == reasons.RESOURCE_GROUP_NOT_FOUND
    assert result.retry_after is None
    assert "rg-apps" in result.message
    assert "Create resource group" in result.message


def test_transient_and_throttled_failures_retry() -> None:
    port = FakeIdentityPort()
    port.fail_next("create_or_update_identity", ArmError(status=503, code="ServiceUnavailable", message="x"))
    result = Object(port, spec()).reconcile()
    assert result.reason == reasons.AZURE_ERROR
    assert result.retry_after
    port.fail_next("get_identity", ArmError(status=429, code="Throttled", message="x", retry_after=7))
    result = Object(port, spec()).reconcile()
    assert result.reason == reasons.THROTTLED
    assert result.retry_after == 7


def test_authorization_failure_waits_for_the_user() -> None:
    port = FakeIdentityPort()
    port.fail_next(
        "create_or_update_identity",
        ArmError(status=403, code="AuthorizationFailed", message="does not have authorization"),
    )
    result = Object(port, spec()).reconcile()
    assert result.reason == reasons.AUTHORIZATION_FAILED
    assert result.retry_after is None


def test_cleanup_deletes_the_recorded_identity() -> None:
    port = FakeIdentityPort()
    obj = Object(port, spec())
    obj.reconcile()
    assert obj.cleanup() is None
    assert port.identity(REF) is None
    assert obj.cleanup() is None  # already gone counts as done


def test_cleanup_with_orphan_policy_leaves_the_identity() -> None:
    port = FakeIdentityPort()
    obj = Object(port, spec(deletionPolicy="Orphan"))
    obj.reconcile()
    assert obj.cleanup() is None
    assert port.identity(REF) is not None
    assert port.writes_of("delete_identity") == []


def test_cleanup_of_an_object_that_never_was_valid_touches_nothing() -> None:
    port = FakeIdentityPort()
    obj = Object(port, spec(), name="bad.name")
    obj.reconcile()
    assert obj.cleanup() is None
    assert port.writes == []


def test_cleanup_when_the_resource_group_is_gone_is_done() -> None:
    port = FakeIdentityPort()
    obj = Object(port, spec())
    obj.reconcile()
    port.fail_next("delete_identity", ArmError(status=404, code="ResourceGroupNotFound", message="gone"))
    assert obj.cleanup() is None


def test_blocked_cleanup_explains_itself_and_retries() -> None:
    port = FakeIdentityPort()
    obj = Object(port, spec())
    obj.reconcile()
    port.fail_next("delete_identity", ArmError(status=403, code="AuthorizationFailed", message="denied"))
    blocked = obj.cleanup()
    assert blocked is not None
    assert blocked.reason == reasons.DELETION_BLOCKED
    assert blocked.retry_after
    assert "denied" in blocked.message
    assert "Orphan" in blocked.message
    assert port.identity(REF) is not None


def test_cleanup_never_deletes_a_same_named_identity_it_never_owned() -> None:
    port = FakeIdentityPort()
    port.put_identity_directly(REF, location="eastus", tags={})
    obj = Object(port, spec())  # westeurope: a Conflict, nothing recorded
    assert obj.reconcile().reason == reasons.CONFLICT
    assert "id" not in obj.status
    assert obj.cleanup() is None
    assert port.identity(REF) is not None
    assert port.writes == []


def test_cleanup_after_a_crash_before_the_status_write_deletes_the_matching_identity() -> None:
    port = FakeIdentityPort()
    asyncio.run(port.create_or_update_identity(REF, location="westeurope", tags={"team": "pay"}))
    obj = Object(port, spec())  # the status write never happened
    assert obj.cleanup() is None
    assert port.identity(REF) is None
