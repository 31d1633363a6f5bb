"""`RoleAssignmentHooks` run by the generic flow, against the in-memory authorization fake.

Covers: creation by role name and by role definition ID (each run twice, the second writing nothing and
reporting no change); waiting for a referenced identity (`obj.identity`, with the principal Azure
reported); the deterministic name; adoption of the same grant under another name; replacement when the
principal, role or scope changes (new one first, then the old one), including a failed delete of the old
one and a grant another object still declares (`obj.shared_with`); drift (deleted, edited) repaired; the
changes each pass reports; errors needing the user (unknown role, AuthorizationFailed, missing scope,
invalid spec) and `PrincipalNotFound` retried, then reported after its grace; the role-definition cache;
removal (what the object owns, a crash before the status write, deletion policy, a shared grant, a
vanished scope, lost access for the grace period, force-delete, transient failures).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.arm import ids
from azure_identity_operator.arm.authorization import RoleAssignmentProperties
from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.reconcilers import flow, role_assignments
from azure_identity_operator.status import outcome, reasons

from .fake_authorization import (
    CONTRIBUTOR_GUID,
    KEY_VAULT_SECRETS_USER_GUID,
    READER_GUID,
    SUBSCRIPTION,
    FakeAuthorization,
    role_id,
)
from .objects import Clock, Life, reasons_of

RG_SCOPE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-app"
VAULT_SCOPE = f"{RG_SCOPE}/providers/Microsoft.KeyVault/vaults/kv-app"
PRINCIPAL_A = "11111111-1111-1111-1111-111111111111"
PRINCIPAL_B = "22222222-2222-2222-2222-222222222222"
MARKER = "[managed by azure-identity-operator: team/reader]"
"""The ownership marker of object team/reader (hooks that know no cluster ID), at a description's end."""


def raw_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "principal": {"principalId": PRINCIPAL_A, "principalType": "ServicePrincipal"},
        "role": "Reader",
        "scope": RG_SCOPE,
    }
    spec.update(overrides)
    return spec


def identity_spec(**overrides: Any) -> dict[str, Any]:
    return raw_spec(principal={"identityRef": {"name": "app"}}, **overrides)


def snapshot(principal_id: str | None = PRINCIPAL_A, *, ready: bool = True) -> PrincipalSnapshot:
    return PrincipalSnapshot(
        kind="UserAssignedIdentity",
        namespace="team",
        name="app",
        ready=ready,
        deleting=False,
        principal_id=principal_id,
        client_id=None,
        tenant_id=None,
        resource_id=None,
    )


class Harness:
    """One RoleAssignment's life: each call names the spec (a change bumps the generation) and the
    referenced identity; `elsewhere` says which other objects declare an assignment (by lower-cased name)."""

    def __init__(self, port: FakeAuthorization | None = None, *, grace: float = 600.0) -> None:
        self.port = port or FakeAuthorization()
        self.clock = Clock()
        self.hooks = role_assignments.RoleAssignmentHooks(self.port, deletion_grace=grace, clock=self.clock)
        self.life = Life(self.hooks, {}, name="reader", writes=lambda: self.port.writes, clock=self.clock)

    @property
    def status(self) -> dict[str, Any]:
        return self.life.status

    @status.setter
    def status(self, value: dict[str, Any]) -> None:
        self.life.status = value

    @property
    def elsewhere(self) -> dict[str, list[str]]:
        return self.life.elsewhere

    def reconcile(
        self, spec: Mapping[str, Any], identity: PrincipalSnapshot | None = None
    ) -> outcome.Outcome:
        self.life.spec = spec
        return self.life.reconcile(identity=identity)

    def reconcile_twice(
        self, spec: Mapping[str, Any], identity: PrincipalSnapshot | None = None
    ) -> outcome.Outcome:
        self.life.spec = spec
        return self.life.reconcile_twice(identity=identity)

    def remove(
        self,
        spec: Mapping[str, Any],
        *,
        identity: PrincipalSnapshot | None = None,
        deleting_since: float | None = None,
        force: bool = False,
    ) -> flow.Removal:
        self.life.spec = spec
        annotations = {flow.FORCE_DELETE_ANNOTATION: "true"} if force else {}
        return self.life.remove(deleting_since=deleting_since, identity=identity, annotations=annotations)


def expected_name(scope: str, principal: str, role_guid: str) -> str:
    return ids.role_assignment_name(
        scope=scope, principal_id=principal, role_definition_id=role_id(role_guid)
    )


def test_role_by_name_is_assigned_under_the_deterministic_name_and_the_second_run_writes_nothing() -> None:
    harness = Harness()
    result = harness.reconcile_twice(raw_spec())
    assert result.ready, result.message
    name = expected_name(RG_SCOPE, PRINCIPAL_A, READER_GUID)
    (assignment,) = harness.port.at_scope(RG_SCOPE)
    assert assignment.name == name
    assert assignment.properties.principal_type == "ServicePrincipal"
    assert harness.status["name"] == name
    assert harness.status["id"] == assignment.id
    assert harness.status["roleDefinitionId"] == role_id(READER_GUID)
    assert harness.status["roleName"] == "Reader"
    assert harness.status["principalId"] == PRINCIPAL_A
    assert harness.status["scope"] == RG_SCOPE
    assert harness.status["adopted"] is False
    (created,) = result.changes
    assert created.reason == outcome.CREATED
    assert name in created.message


def test_role_by_definition_id_in_every_form() -> None:
    for form in (
        KEY_VAULT_SECRETS_USER_GUID,
        f"/providers/Microsoft.Authorization/roleDefinitions/{KEY_VAULT_SECRETS_USER_GUID}",
        role_id(KEY_VAULT_SECRETS_USER_GUID),
    ):
        harness = Harness()
        spec = raw_spec(role=None, roleDefinitionId=form, scope=VAULT_SCOPE)
        spec.pop("role")
        result = harness.reconcile_twice(spec)
        assert result.ready, result.message
        assert reasons_of(result.changes) == [outcome.CREATED]
        assert harness.status["roleDefinitionId"] == role_id(KEY_VAULT_SECRETS_USER_GUID)
        assert harness.status["roleName"] == "Key Vault Secrets User"
        assert harness.status["name"] == expected_name(VAULT_SCOPE, PRINCIPAL_A, KEY_VAULT_SECRETS_USER_GUID)


def test_subscription_scope() -> None:
    harness = Harness()
    scope = f"/subscriptions/{SUBSCRIPTION}"
    assert harness.reconcile_twice(raw_spec(scope=scope)).ready
    assert len(harness.port.at_scope(scope)) == 1


def test_a_referenced_identity_is_waited_for_and_then_assigned_as_a_service_principal() -> None:
    harness = Harness()
    missing = harness.reconcile(identity_spec(), identity=None)
    assert (missing.ready, missing.reason, missing.retry_after) == (False, reasons.REFERENCE_NOT_FOUND, None)
    assert "UserAssignedIdentity 'app'" in missing.message
    assert harness.status["roleName"] == "Reader", "the ROLE column shows what was asked for"
    pending = harness.reconcile(identity_spec(), identity=snapshot(None, ready=False))
    assert (pending.reason, pending.retry_after) == (reasons.WAITING_FOR_IDENTITY, None)
    assert not pending.needs_user_action
    assert harness.port.writes == 0
    ready = harness.reconcile_twice(identity_spec(), identity=snapshot())
    assert ready.ready, ready.message
    assert reasons_of(ready.changes) == [outcome.CREATED]
    (assignment,) = harness.port.at_scope(RG_SCOPE)
    assert assignment.properties.principal_type == "ServicePrincipal"
    assert assignment.properties.principal_id == PRINCIPAL_A


def test_the_same_grant_under_another_name_is_adopted() -> None:
    harness = Harness()
    existing = harness.port.seed(
        "99999999-9999-9999-9999-999999999999",
        RoleAssignmentProperties(
            scope=RG_SCOPE,
            role_definition_id=role_id(READER_GUID),
            principal_id=PRINCIPAL_A,
            principal_type="User",
        ),
    )
    result = harness.reconcile_twice(raw_spec())
    assert result.ready
    assert "adopted" in result.message
    assert harness.status["adopted"] is True
    assert harness.status["name"] == existing.name
    assert len(harness.port.at_scope(RG_SCOPE)) == 1
    assert reasons_of(result.changes) == [outcome.ADOPTED]


def _seed_reader_grant(harness: Harness, scope: str = RG_SCOPE) -> str:
    name = "99999999-9999-9999-9999-999999999999"
    harness.port.seed(
        name,
        RoleAssignmentProperties(
            scope=scope,
            role_definition_id=role_id(READER_GUID),
            principal_id=PRINCIPAL_A,
            principal_type="User",
        ),
    )
    return name


def test_the_grant_azure_names_in_the_conflict_is_adopted_while_lists_still_lag() -> None:
    harness = Harness()
    existing = _seed_reader_grant(harness)
    harness.port.listed_late.add(existing)
    result = harness.reconcile(raw_spec())
    assert result.ready, result.message
    assert harness.status["name"] == existing
    assert harness.status["adopted"] is True
    assert harness.port.calls["list_role_assignments_for_principal"] == 0


def test_a_conflict_that_names_no_assignment_is_resolved_by_listing_the_principal_s_grants() -> None:
    harness = Harness()
    existing = _seed_reader_grant(harness)
    harness.port.conflicts_name_the_existing_assignment = False
    result = harness.reconcile(raw_spec())
    assert result.ready, result.message
    assert harness.status["name"] == existing
    assert harness.port.calls["list_role_assignments_for_principal"] == 1


def test_a_grant_inherited_from_the_subscription_is_not_adopted_at_the_group() -> None:
    harness = Harness()
    inherited = _seed_reader_grant(harness, scope=f"/subscriptions/{SUBSCRIPTION}")
    result = harness.reconcile(raw_spec())
    assert result.ready, result.message
    assert harness.status["name"] != inherited
    assert harness.status["adopted"] is False
    assert len(harness.port.at_scope(RG_SCOPE)) == 1
    assert reasons_of(result.changes) == [outcome.CREATED]


def test_an_adopted_assignment_is_removed_with_the_object() -> None:
    harness = Harness()
    existing = _seed_reader_grant(harness)
    harness.reconcile(raw_spec())
    assert harness.status["name"] == existing
    removal = harness.remove(raw_spec())
    assert removal.done
    assert reasons_of(removal.result.changes) == [outcome.DELETED]
    assert harness.port.at_scope(RG_SCOPE) == []


def test_a_principal_change_creates_the_new_assignment_then_deletes_the_old_one() -> None:
    harness = Harness()
    harness.reconcile(identity_spec(), identity=snapshot(PRINCIPAL_A))
    old_name = harness.status["name"]
    result = harness.reconcile_twice(identity_spec(), identity=snapshot(PRINCIPAL_B))
    assert result.ready
    (assignment,) = harness.port.at_scope(RG_SCOPE)
    assert assignment.properties.principal_id == PRINCIPAL_B
    assert harness.status["name"] == expected_name(RG_SCOPE, PRINCIPAL_B, READER_GUID) != old_name
    assert harness.status["principalId"] == PRINCIPAL_B
    created, replaced = result.changes
    assert (created.reason, replaced.reason) == (outcome.CREATED, outcome.REPLACED)
    assert old_name in replaced.message


def test_a_role_or_scope_change_replaces_the_assignment() -> None:
    harness = Harness()
    harness.reconcile(raw_spec())
    result = harness.reconcile_twice(raw_spec(role="Contributor"))
    assert result.ready
    assert reasons_of(result.changes) == [outcome.CREATED, outcome.REPLACED]
    assert [a.properties.role_definition_id for a in harness.port.at_scope(RG_SCOPE)] == [
        role_id(CONTRIBUTOR_GUID)
    ]
    result = harness.reconcile_twice(raw_spec(role="Contributor", scope=VAULT_SCOPE))
    assert result.ready
    assert reasons_of(result.changes) == [outcome.CREATED, outcome.REPLACED]
    assert harness.port.at_scope(RG_SCOPE) == []
    assert len(harness.port.at_scope(VAULT_SCOPE)) == 1


def test_a_failed_delete_of_the_replaced_assignment_keeps_it_recorded_until_it_succeeds() -> None:
    harness = Harness()
    harness.reconcile(raw_spec())
    old_name = harness.status["name"]
    harness.port.delete_failures.append(ArmError(status=503, code="ServiceUnavailable", message="later"))
    failed = harness.reconcile(raw_spec(role="Contributor"))
    assert (failed.ready, failed.reason) == (False, reasons.AZURE_ERROR)
    assert failed.retry_after is not None
    assert reasons_of(failed.changes) == [outcome.CREATED], "the new one was created all the same"
    assert harness.status["name"] == old_name, "the old assignment stays recorded so it is deleted later"
    assert len(harness.port.at_scope(RG_SCOPE)) == 2
    healed = harness.reconcile_twice(raw_spec(role="Contributor"))
    assert healed.ready
    assert reasons_of(healed.changes) == [outcome.REPLACED]
    (assignment,) = harness.port.at_scope(RG_SCOPE)
    assert harness.status["name"] == assignment.name != old_name


def test_a_replaced_assignment_another_object_declares_is_kept() -> None:
    harness = Harness()
    harness.reconcile(raw_spec())
    old_name = harness.status["name"]
    harness.elsewhere[old_name.lower()] = ["team/other"]
    result = harness.reconcile_twice(raw_spec(role="Contributor"))
    assert result.ready
    assert reasons_of(result.changes) == [outcome.CREATED]
    assert len(harness.port.at_scope(RG_SCOPE)) == 2


def test_a_status_pointed_at_someone_else_s_assignment_never_deletes_it() -> None:
    harness = Harness()
    theirs = harness.port.seed(
        "88888888-8888-8888-8888-888888888888",
        RoleAssignmentProperties(
            scope=RG_SCOPE,
            role_definition_id=role_id(CONTRIBUTOR_GUID),
            principal_id=PRINCIPAL_B,
            principal_type="User",
        ),
    )
    # Written by someone allowed to patch /status: a pointer, never proof of ownership.
    harness.status = {"id": theirs.id, "name": theirs.name, "scope": RG_SCOPE}
    result = harness.reconcile(raw_spec())
    assert result.ready
    assert reasons_of(result.changes) == [outcome.CREATED]
    harness.status = {"id": theirs.id, "name": theirs.name, "scope": RG_SCOPE}
    assert harness.remove(raw_spec()).done
    assert harness.port.at_scope(RG_SCOPE) == [theirs]


def test_drift_is_repaired_deleted_or_edited() -> None:
    harness = Harness()
    spec = raw_spec(description="read the app's resource group")
    harness.reconcile(spec)
    (assignment,) = harness.port.at_scope(RG_SCOPE)
    harness.port.assignments.clear()
    recreated_result = harness.reconcile_twice(spec)
    assert recreated_result.ready
    (created_again,) = recreated_result.changes
    assert assignment.name in created_again.message
    (recreated,) = harness.port.at_scope(RG_SCOPE)
    assert recreated.name == assignment.name
    harness.port.seed(
        recreated.name,
        RoleAssignmentProperties(
            scope=RG_SCOPE,
            role_definition_id=recreated.properties.role_definition_id,
            principal_id=PRINCIPAL_A,
            principal_type="ServicePrincipal",
            description="edited by hand",
            condition="@Resource[x] StringEquals 'y'",
            condition_version="2.0",
        ),
    )
    harness.port.reset_counts()
    repaired_result = harness.reconcile(spec)
    assert repaired_result.ready
    assert reasons_of(repaired_result.changes) == [outcome.DRIFT_REPAIRED]
    assert harness.port.calls["create_role_assignment"] == 1
    (repaired,) = harness.port.at_scope(RG_SCOPE)
    assert repaired.properties.description == f"read the app's resource group {MARKER}"
    assert repaired.properties.condition is None
    assert harness.reconcile_twice(spec).changes == ()


def test_a_description_change_in_the_spec_is_an_update() -> None:
    harness = Harness()
    harness.reconcile(raw_spec(description="first"))
    result = harness.reconcile_twice(raw_spec(description="second"))
    assert result.ready
    assert reasons_of(result.changes) == [outcome.UPDATED]
    (assignment,) = harness.port.at_scope(RG_SCOPE)
    assert assignment.properties.description == f"second {MARKER}", "the spec's text, then the marker"


def test_a_condition_is_sent_with_its_version() -> None:
    harness = Harness()
    condition = (
        "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'logs'"
    )
    assert harness.reconcile_twice(raw_spec(condition=condition, conditionVersion="2.0")).ready
    (assignment,) = harness.port.at_scope(RG_SCOPE)
    assert (assignment.properties.condition, assignment.properties.condition_version) == (condition, "2.0")
    # One without the other is refused before Azure is asked, whichever is missing.
    for half in ({"condition": condition}, {"conditionVersion": "2.0"}):
        refused = Harness().reconcile(raw_spec(**half))
        assert refused.reason == reasons.INVALID_SPEC
        assert "go together" in refused.message


def test_a_changed_condition_is_the_same_assignment_rewritten_in_place() -> None:
    harness = Harness()
    first = "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'logs'"
    second = "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'audit'"
    assert harness.reconcile_twice(raw_spec(condition=first, conditionVersion="2.0")).ready
    (before,) = harness.port.at_scope(RG_SCOPE)
    writes = harness.port.writes
    changed = harness.reconcile_twice(raw_spec(condition=second, conditionVersion="2.0"))
    assert changed.ready
    (after,) = harness.port.at_scope(RG_SCOPE)
    assert after.name == before.name
    assert after.properties.condition == second
    assert harness.port.writes == writes + 1  # one PUT, no delete


def test_unknown_roles_need_the_user() -> None:
    harness = Harness()
    by_name = harness.reconcile(raw_spec(role="Key Vault Secret User"))
    assert (by_name.ready, by_name.reason, by_name.retry_after) == (False, reasons.ROLE_NOT_FOUND, None)
    assert by_name.needs_user_action
    assert "'Key Vault Secret User'" in by_name.message
    assert harness.status["roleName"] == "Key Vault Secret User"
    spec = raw_spec(roleDefinitionId="00000000-0000-0000-0000-000000000bad")
    spec.pop("role")
    by_id = harness.reconcile(spec)
    assert (by_id.reason, by_id.retry_after) == (reasons.ROLE_NOT_FOUND, None)
    assert harness.port.writes == 0


def test_a_custom_role_created_later_is_found_because_misses_are_not_cached() -> None:
    harness = Harness()
    assert harness.reconcile(raw_spec(role="App Reader")).reason == reasons.ROLE_NOT_FOUND
    harness.port.custom_roles["App Reader"] = "33333333-3333-3333-3333-333333333333"
    assert harness.reconcile(raw_spec(role="app reader")).ready


def test_role_definitions_are_cached_for_their_ttl() -> None:
    port = FakeAuthorization()
    now = [0.0]
    roles = role_assignments.RoleResolver(port, ttl=60, clock=lambda: now[0])
    for _ in range(3):
        assert asyncio.run(roles.by_name(RG_SCOPE, SUBSCRIPTION, "reader")) is not None
    assert port.calls["find_role_definitions"] == 1
    now[0] = 61
    asyncio.run(roles.by_name(RG_SCOPE, SUBSCRIPTION, "Reader"))
    assert port.calls["find_role_definitions"] == 2
    asyncio.run(roles.by_id(role_id(READER_GUID), SUBSCRIPTION))
    assert port.calls["get_role_definition"] == 0, "a definition found by name is also cached by ID"


def test_principal_not_found_is_retried_says_why_and_is_reported_after_its_grace() -> None:
    harness = Harness()
    spec = raw_spec(principal={"principalId": PRINCIPAL_B})
    result = harness.reconcile(spec)
    assert (result.ready, result.reason) == (False, reasons.WAITING_FOR_PRINCIPAL)
    assert result.retry_after is not None
    assert not result.needs_user_action
    assert "principalType" in result.message
    harness.clock.advance(role_assignments.PRINCIPAL_GRACE_SECONDS - 1)
    assert harness.reconcile(spec).reason == reasons.WAITING_FOR_PRINCIPAL
    harness.clock.advance(1)
    stale = harness.reconcile(spec)
    assert stale.reason == reasons.PRINCIPAL_NOT_FOUND
    assert stale.needs_user_action
    assert stale.retry_after == 60, "still retried, slowly, to notice the principal once it exists"
    assert "object ID" in stale.message
    harness.port.known_principals.add(PRINCIPAL_B)
    healed = harness.reconcile_twice(spec)
    assert healed.ready
    assert reasons_of(healed.changes) == [outcome.CREATED]


def test_authorization_failed_needs_the_user_names_the_fix_and_is_retried_slowly() -> None:
    harness = Harness()
    harness.port.forbidden_scopes.add(RG_SCOPE.lower())
    result = harness.reconcile(raw_spec())
    assert (result.ready, result.reason, result.retry_after) == (False, reasons.AUTHORIZATION_FAILED, 60)
    assert result.needs_user_action
    assert "User Access Administrator" in result.message


def test_a_missing_scope_needs_the_user() -> None:
    harness = Harness()
    harness.port.missing_scopes.add(RG_SCOPE.lower())
    result = harness.reconcile(raw_spec(scope=VAULT_SCOPE))
    assert not result.ready
    assert result.needs_user_action
    assert result.retry_after == 60
    assert result.reason == reasons.RESOURCE_GROUP_NOT_FOUND
    assert "create it, or fix spec.scope" in result.message


def test_invalid_specs_say_which_field_to_fix() -> None:
    harness = Harness()
    cases = {
        "exactly one of identityRef": raw_spec(
            principal={"identityRef": {"name": "app"}, "principalId": PRINCIPAL_A}
        ),
        "exactly one of role": raw_spec(roleDefinitionId=READER_GUID),
        "spec.scope": raw_spec(scope="/subscriptions/not-a-guid/resourceGroups/rg"),
        "spec.principal.principalId": raw_spec(principal={"principalId": "app-client-id"}),
        "spec.principal.identityRef.kind": raw_spec(
            principal={"identityRef": {"kind": "Secret", "name": "x"}}
        ),
        "conditionVersion": raw_spec(conditionVersion="2.0"),
    }
    for expected, spec in cases.items():
        result = harness.reconcile(spec)
        assert (result.reason, result.retry_after) == (reasons.INVALID_SPEC, None), spec
        assert expected in result.message, result.message
    assert harness.port.calls == {}


def test_removal_deletes_exactly_the_assignment_the_object_owns() -> None:
    harness = Harness()
    unrelated = harness.port.seed(
        "88888888-8888-8888-8888-888888888888",
        RoleAssignmentProperties(
            scope=RG_SCOPE,
            role_definition_id=role_id(CONTRIBUTOR_GUID),
            principal_id=PRINCIPAL_A,
            principal_type="User",
        ),
    )
    harness.reconcile(raw_spec())
    removal = harness.remove(raw_spec())
    assert removal.done
    assert removal.warning is None
    (deleted,) = removal.result.changes
    assert deleted.reason == outcome.DELETED
    assert harness.status["name"] in deleted.message
    assert harness.port.at_scope(RG_SCOPE) == [unrelated]
    # Deleting again (a retried removal) is done too, and changes nothing.
    again = harness.remove(raw_spec())
    assert again.done
    assert again.result.changes == ()


def test_removal_follows_the_principal_azure_reported_for_the_referenced_identity() -> None:
    harness = Harness()
    harness.reconcile(identity_spec(), identity=snapshot(PRINCIPAL_A))
    # The identity is not Ready any more (being deleted too, say): its principal still names the grant.
    assert harness.remove(identity_spec(), identity=snapshot(PRINCIPAL_A, ready=False)).done
    assert harness.port.at_scope(RG_SCOPE) == []


def test_removal_after_a_crash_before_the_status_write_removes_the_derived_assignment() -> None:
    harness = Harness()
    harness.reconcile(raw_spec())
    harness.status = {}
    assert harness.remove(raw_spec()).done
    assert harness.port.at_scope(RG_SCOPE) == []


def test_an_object_that_never_got_its_assignment_is_removed_at_once_even_where_writes_are_forbidden() -> None:
    harness = Harness()
    harness.port.forbidden_scopes.add(RG_SCOPE.lower())
    assert harness.reconcile(raw_spec()).reason == reasons.AUTHORIZATION_FAILED
    removal = harness.remove(raw_spec())
    assert removal.done
    assert removal.warning is None
    assert harness.port.calls["delete_role_assignment"] == 0


def test_orphan_leaves_the_assignment() -> None:
    harness = Harness()
    harness.reconcile(raw_spec(deletionPolicy="Orphan"))
    harness.port.reset_counts()
    assert harness.remove(raw_spec(deletionPolicy="Orphan")).done
    assert harness.port.calls == {}
    assert len(harness.port.at_scope(RG_SCOPE)) == 1


def test_removal_keeps_an_assignment_another_object_still_declares() -> None:
    harness = Harness()
    harness.reconcile(raw_spec())
    harness.elsewhere[harness.status["name"].lower()] = ["other/reader"]
    removal = harness.remove(raw_spec())
    assert removal.done
    assert removal.result.changes == ()
    assert len(harness.port.at_scope(RG_SCOPE)) == 1


def test_a_vanished_scope_means_the_assignment_is_gone() -> None:
    harness = Harness()
    harness.reconcile(raw_spec())
    harness.port.missing_scopes.add(RG_SCOPE.lower())
    removal = harness.remove(raw_spec())
    assert removal.done
    assert removal.warning is None


def test_lost_access_blocks_deletion_for_the_grace_period_then_releases_with_a_warning() -> None:
    harness = Harness(grace=600)
    harness.reconcile(raw_spec())
    harness.port.forbidden_scopes.add(RG_SCOPE.lower())
    now = harness.clock.now
    blocked = harness.remove(raw_spec(), deleting_since=now - 60)
    assert not blocked.done
    assert blocked.result.reason == reasons.DELETION_BLOCKED
    assert blocked.result.retry_after == flow.DELETION_RETRY_SECONDS
    assert flow.FORCE_DELETE_ANNOTATION in blocked.result.message
    assert "540s" in blocked.result.message
    assert harness.status["conditions"][0]["reason"] == reasons.DELETION_BLOCKED
    released = harness.remove(raw_spec(), deleting_since=now - 600)
    assert released.done
    assert released.warning is not None
    assert "may remain in Azure" in released.warning
    forced = harness.remove(raw_spec(), deleting_since=now - 1, force=True)
    assert forced.done
    assert forced.warning is not None
    assert len(harness.port.at_scope(RG_SCOPE)) == 1


def test_transient_failures_on_delete_are_retried_not_released() -> None:
    harness = Harness()
    harness.reconcile(raw_spec())
    # Long past the grace for lost access: transient failures never release the object.
    harness.port.failures.append(ArmError(status=503, code="ServiceUnavailable", message="later"))
    removal = harness.remove(raw_spec(), deleting_since=harness.clock.now - 10_000)
    assert not removal.done
    assert removal.result.retry_after is not None
    assert "ServiceUnavailable" in removal.result.message
    harness.port.delete_failures.append(ArmError(status=503, code="ServiceUnavailable", message="later"))
    removal = harness.remove(raw_spec(), deleting_since=harness.clock.now - 10_000)
    assert not removal.done
    assert removal.result.reason == reasons.AZURE_ERROR
    assert len(harness.port.at_scope(RG_SCOPE)) == 1


def test_a_transient_failure_resolving_the_role_on_removal_does_not_release_the_object() -> None:
    harness = Harness()
    harness.reconcile(raw_spec())
    restarted = role_assignments.RoleAssignmentHooks(harness.port, clock=harness.clock)
    harness.life.hooks = restarted  # a fresh process: nothing cached
    harness.port.failures.append(ArmError(status=503, code="ServiceUnavailable", message="later"))
    removal = harness.remove(raw_spec())
    assert not removal.done
    assert len(harness.port.at_scope(RG_SCOPE)) == 1


class SlowAuthorization(FakeAuthorization):
    """Azure takes a moment to answer, as it does: lookups overlap."""

    async def find_role_definitions(self, scope: str, role_name: str) -> Any:
        await asyncio.sleep(0.01)
        return await super().find_role_definitions(scope, role_name)


def test_concurrent_lookups_of_one_role_ask_azure_once() -> None:
    port = SlowAuthorization()
    roles = role_assignments.RoleResolver(port)

    async def many() -> list[Any]:
        return await asyncio.gather(*(roles.by_name(RG_SCOPE, SUBSCRIPTION, "Reader") for _ in range(50)))

    found = asyncio.run(many())
    assert {definition.role_name for definition in found} == {"Reader"}
    assert port.calls["find_role_definitions"] == 1
