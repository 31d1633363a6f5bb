"""Ownership markers with plain data: who owns an identity (its `identityoperator.dev_owner` tag) or a role
assignment (the end of its description), and what the operator does about another owner's.

Covers: the marker format (cluster/namespace/name, shortened to fit a tag value, read back from a
description wherever it stands); identities created and adopted with the marker, kept under exact tags,
put back when removed in Azure; role assignments created with it after the spec's text, a description
differing only by the marker not counted as drift, the marker put back; another cluster's (or, for an
identity, another object's) marker reported `OwnedElsewhere` with nothing written; the adopt annotation
taking over and rewriting the marker; deletion leaving another owner's resource in Azure; shared grants of
one cluster (the marker names the first object while it declares the grant); the bulk drift checks; specs
that would write a marker of their own. Every reconcile scenario runs a second time, which must write
nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from azure_identity_operator.arm import ids
from azure_identity_operator.arm.authorization import RoleAssignmentProperties
from azure_identity_operator.arm.identities import IdentityRef
from azure_identity_operator.reconcilers import flow, ownership
from azure_identity_operator.reconcilers.kube_port import ClusterIdentity
from azure_identity_operator.reconcilers.role_assignments import RoleAssignmentHooks
from azure_identity_operator.reconcilers.user_assigned_identities import UserAssignedIdentityHooks
from azure_identity_operator.status import outcome, reasons

from .fake_authorization import READER_GUID, SUBSCRIPTION, FakeAuthorization, role_id
from .fake_resources import FakeResourcePort
from .fakes import TENANT_ID, FakeIdentityPort
from .objects import Life, reasons_of

REF = IdentityRef(SUBSCRIPTION, "rg-apps", "payments")
OURS = "east/team/payments"
WEST = "west/team/payments"
"""The same namespace and name in another cluster."""
RG_SCOPE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-app"
PRINCIPAL = "11111111-1111-1111-1111-111111111111"
ASSIGNMENT = ids.role_assignment_name(
    scope=RG_SCOPE, principal_id=PRINCIPAL, role_definition_id=role_id(READER_GUID)
)


# --- the marker ---------------------------------------------------------------------------------------------


def test_an_owner_is_cluster_namespace_and_name_and_reads_back() -> None:
    owner = ownership.Owner("east", "team", "payments")
    assert owner.value == owner.tag_value == OURS
    assert ownership.Owner.parse(OURS) == owner
    assert ownership.Owner(None, "team", "payments").value == "team/payments"
    assert ownership.Owner.parse("team/payments") == ownership.Owner(None, "team", "payments")
    assert ownership.Owner.parse("not a marker") is None
    assert ownership.Owner.parse("a//b") is None


def test_a_long_owner_is_shortened_to_fit_a_tag_value_and_stays_distinct() -> None:
    cluster = "c" * 63
    one = ownership.Owner(cluster, "n" * 63, "a" * 240)
    other = ownership.Owner(cluster, "n" * 63, "a" * 239 + "b")
    assert len(one.value) > ownership.TAG_VALUE_LIMIT
    assert len(one.tag_value) == ownership.TAG_VALUE_LIMIT
    assert one.tag_value != other.tag_value
    assert one.tag_value.startswith(f"{cluster}/{'n' * 63}/aaa")
    assert ownership.claim(one.tag_value, one, as_tag=True) is ownership.Claim.OURS
    assert ownership.claim(other.tag_value, one, as_tag=True) is ownership.Claim.SIBLING


def test_claims() -> None:
    owner = ownership.Owner("east", "team", "payments")
    assert ownership.claim(None, owner) is ownership.Claim.UNMARKED
    assert ownership.claim("", owner) is ownership.Claim.UNMARKED
    assert ownership.claim(OURS, owner) is ownership.Claim.OURS
    assert ownership.claim("east/other/payments", owner) is ownership.Claim.SIBLING
    assert ownership.claim(WEST, owner) is ownership.Claim.FOREIGN
    assert ownership.claim("team/payments", owner) is ownership.Claim.FOREIGN, "a cluster without an ID"
    assert ownership.claim("garbage", owner) is ownership.Claim.FOREIGN
    assert "cluster west" in ownership.describe(WEST, owner, "RoleAssignment")
    assert "this cluster" in ownership.describe("east/other/payments", owner, "RoleAssignment")


def test_a_description_is_the_users_text_then_the_marker_read_back_wherever_it_stands() -> None:
    marked = ownership.marked_description("read the vault", OURS)
    assert marked == f"read the vault [managed by azure-identity-operator: {OURS}]"
    assert ownership.split_description(marked) == ownership.Description("read the vault", OURS)
    assert ownership.marked_description(None, OURS) == f"[managed by azure-identity-operator: {OURS}]"
    assert ownership.split_description(ownership.marked_description(None, OURS)) == ownership.Description(
        None, OURS
    )
    edited = f"read [managed by azure-identity-operator: {WEST}] the vault"
    assert ownership.split_description(edited) == ownership.Description("read the vault", WEST)
    twice = f"{ownership.marked_description('x', WEST)} [managed by azure-identity-operator: {OURS}]"
    assert ownership.split_description(twice).marker == OURS, "the last marker counts"
    assert ownership.split_description("plain") == ownership.Description("plain", None)
    assert ownership.split_description(None) == ownership.Description(None, None)


# --- user-assigned identities -------------------------------------------------------------------------------


def identity(port: FakeIdentityPort, *, cluster: str | None = "east", **spec: Any) -> Life:
    hooks = UserAssignedIdentityHooks(
        port,
        FakeResourcePort(),
        None,
        default_subscription_id=SUBSCRIPTION,
        default_tenant_id=TENANT_ID,
        cluster=ClusterIdentity(cluster),
    )
    body = {"resourceGroup": "rg-apps", "location": "westeurope", "tags": {"team": "pay"}, **spec}
    return Life(hooks, body, name="payments", writes=lambda: len(port.writes))


def tags(port: FakeIdentityPort) -> dict[str, str]:
    found = port.identity(REF)
    assert found is not None
    return dict(found.tags)


def test_an_identity_is_created_with_its_marker_and_exact_tags_keep_it() -> None:
    port = FakeIdentityPort()
    obj = identity(port)
    assert obj.reconcile_twice().ready
    assert tags(port) == {"team": "pay", ownership.OWNER_TAG: OURS}
    asyncio.run(port.update_identity_tags(REF, tags={**tags(port), "added": "in the portal"}))
    result = obj.reconcile_twice()
    assert reasons_of(result.changes) == [outcome.DRIFT_REPAIRED]
    assert tags(port) == {"team": "pay", ownership.OWNER_TAG: OURS}, (
        "the tag added in Azure goes, the marker stays"
    )


def test_a_marker_removed_in_azure_is_put_back() -> None:
    port = FakeIdentityPort()
    obj = identity(port)
    obj.reconcile()
    asyncio.run(port.update_identity_tags(REF, tags={"team": "pay"}))
    result = obj.reconcile_twice()
    (repaired,) = result.changes
    assert repaired.reason == outcome.DRIFT_REPAIRED
    assert ownership.OWNER_TAG in repaired.message
    assert tags(port) == {"team": "pay", ownership.OWNER_TAG: OURS}
    assert obj.status["adopted"] is False, "still the identity this object created"


def test_without_a_cluster_id_the_marker_names_namespace_and_name() -> None:
    port = FakeIdentityPort()
    identity(port, cluster=None).reconcile_twice()
    assert tags(port)[ownership.OWNER_TAG] == "team/payments"


def test_another_clusters_identity_is_owned_elsewhere_and_never_written() -> None:
    port = FakeIdentityPort()
    port.put_identity_directly(REF, location="westeurope", tags={"team": "west", ownership.OWNER_TAG: WEST})
    obj = identity(port)
    result = obj.reconcile_twice()
    assert not result.ready
    assert result.reason == reasons.OWNED_ELSEWHERE
    assert result.needs_user_action, "a person decides: a Warning Event, Stalled"
    assert result.retry_after is None
    assert "cluster west" in result.message
    assert "team/payments" in result.message
    assert ownership.ADOPT_ANNOTATION in result.message
    assert port.writes == []
    assert tags(port) == {"team": "west", ownership.OWNER_TAG: WEST}
    assert "id" not in obj.status
    assert "principalId" not in obj.status


def test_an_identity_of_another_object_of_this_cluster_is_owned_elsewhere_too() -> None:
    port = FakeIdentityPort()
    port.put_identity_directly(REF, location="westeurope", tags={ownership.OWNER_TAG: "east/other/payments"})
    result = identity(port).reconcile_twice()
    assert result.reason == reasons.OWNED_ELSEWHERE
    assert "other/payments of this cluster" in result.message
    assert port.writes == []


def test_an_identity_taken_over_elsewhere_turns_owned_elsewhere_and_its_ids_leave_the_status() -> None:
    port = FakeIdentityPort()
    obj = identity(port)
    obj.reconcile()
    assert obj.status["principalId"]
    asyncio.run(port.update_identity_tags(REF, tags={ownership.OWNER_TAG: WEST}))
    writes = len(port.writes)
    assert obj.reconcile_twice().reason == reasons.OWNED_ELSEWHERE
    assert len(port.writes) == writes, "no tag tug-of-war: the other owner's marker stays"
    assert not {"id", "principalId", "clientId", "tenantId"} & set(obj.status)


def test_the_adopt_annotation_takes_an_identity_over_and_rewrites_its_marker() -> None:
    port = FakeIdentityPort()
    existing = port.put_identity_directly(REF, location="westeurope", tags={ownership.OWNER_TAG: WEST})
    obj = identity(port)
    assert obj.reconcile().reason == reasons.OWNED_ELSEWHERE
    obj.annotations[ownership.ADOPT_ANNOTATION] = "true"
    result = obj.reconcile_twice()
    assert result.ready
    (adopted,) = result.changes
    assert adopted.reason == outcome.ADOPTED
    assert "cluster west" in adopted.message
    assert tags(port) == {"team": "pay", ownership.OWNER_TAG: OURS}
    assert obj.status["adopted"] is True
    assert obj.status["principalId"] == existing.principal_id, "the same identity, kept"
    assert port.writes_of("update_identity_tags") == [REF.id]


def test_deletion_leaves_an_identity_marked_by_another_owner_and_says_so() -> None:
    port = FakeIdentityPort()
    port.put_identity_directly(REF, location="westeurope", tags={ownership.OWNER_TAG: WEST})
    obj = identity(port)
    obj.reconcile()
    removal = obj.remove()
    assert removal.done
    assert removal.warning is not None
    assert "left in Azure" in removal.warning
    assert "cluster west" in removal.warning
    assert port.identity(REF) is not None
    assert port.writes == []


def test_deletion_deletes_an_identity_this_object_marked() -> None:
    port = FakeIdentityPort()
    obj = identity(port)
    obj.reconcile()
    removal = obj.remove()
    assert removal.done
    assert removal.warning is None
    assert port.identity(REF) is None


def test_spec_tags_may_not_carry_the_marker_in_any_case() -> None:
    port = FakeIdentityPort()
    for name in (ownership.OWNER_TAG, "IdentityOperator.dev_Owner"):
        result = identity(port, tags={name: "east/team/payments"}).reconcile()
        assert result.reason == reasons.INVALID_SPEC
        assert ownership.OWNER_TAG in result.message
    too_many = {f"t{i}": "v" for i in range(50)}
    assert identity(port, tags=too_many).reconcile().reason == reasons.INVALID_SPEC
    assert port.writes == []


def test_the_identity_drift_check_sees_a_missing_or_foreign_marker() -> None:
    port = FakeIdentityPort()
    obj = identity(port)
    obj.reconcile()

    def verdict() -> flow.Verdict:
        return asyncio.run(obj.hooks.survey([obj.state()]))["team/payments"]  # type: ignore[attr-defined]

    assert not verdict().drifted
    asyncio.run(port.update_identity_tags(REF, tags={"team": "pay"}))
    assert verdict().drifted
    asyncio.run(port.update_identity_tags(REF, tags={"team": "pay", ownership.OWNER_TAG: WEST}))
    assert verdict().drifted


# --- role assignments ---------------------------------------------------------------------------------------


def assignment(port: FakeAuthorization, *, name: str = "reader", **spec: Any) -> Life:
    hooks = RoleAssignmentHooks(port, cluster=ClusterIdentity("east"))
    body = {
        "principal": {"principalId": PRINCIPAL, "principalType": "ServicePrincipal"},
        "role": "Reader",
        "scope": RG_SCOPE,
        **spec,
    }
    return Life(hooks, body, name=name, writes=lambda: port.writes)


def marker(owner: str) -> str:
    return f"[managed by azure-identity-operator: {owner}]"


def description(port: FakeAuthorization) -> str | None:
    (found,) = port.at_scope(RG_SCOPE)
    return found.properties.description


def seed(port: FakeAuthorization, text: str | None) -> None:
    port.seed(
        ASSIGNMENT,
        RoleAssignmentProperties(
            scope=RG_SCOPE,
            role_definition_id=role_id(READER_GUID),
            principal_id=PRINCIPAL,
            principal_type="ServicePrincipal",
            description=text,
        ),
    )


def test_an_assignment_is_created_with_the_marker_after_the_specs_text() -> None:
    port = FakeAuthorization()
    assert assignment(port).reconcile_twice().ready
    assert description(port) == marker("east/team/reader")
    other = FakeAuthorization()
    assert assignment(other, description="lets the app read its group").reconcile_twice().ready
    assert description(other) == f"lets the app read its group {marker('east/team/reader')}"


def test_a_description_differing_only_by_the_marker_is_not_drift() -> None:
    port = FakeAuthorization()
    obj = assignment(port)  # no spec.description: Azure's text is left as it is
    obj.reconcile()
    seed(port, f"noted in the portal {marker('east/team/reader')}")
    port.reset_counts()
    assert obj.reconcile_twice().changes == ()
    assert port.writes == 0
    assert description(port) == f"noted in the portal {marker('east/team/reader')}"


def test_the_spec_description_is_followed_and_the_marker_kept() -> None:
    port = FakeAuthorization()
    obj = assignment(port, description="first")
    obj.reconcile()
    obj.spec = {**obj.spec, "description": "second"}
    result = obj.reconcile_twice()
    assert reasons_of(result.changes) == [outcome.UPDATED]
    assert description(port) == f"second {marker('east/team/reader')}"


def test_a_marker_removed_from_the_description_is_put_back() -> None:
    port = FakeAuthorization()
    obj = assignment(port, description="why")
    obj.reconcile()
    seed(port, "why")
    result = obj.reconcile_twice()
    assert reasons_of(result.changes) == [outcome.DRIFT_REPAIRED]
    assert description(port) == f"why {marker('east/team/reader')}"


def test_an_unmarked_assignment_is_adopted_and_marked() -> None:
    port = FakeAuthorization()
    seed(port, "made by hand")
    result = assignment(port).reconcile_twice()
    assert result.ready
    assert description(port) == f"made by hand {marker('east/team/reader')}"


def test_another_clusters_assignment_is_owned_elsewhere_and_never_written() -> None:
    port = FakeAuthorization()
    seed(port, f"west's {marker('west/team/reader')}")
    port.reset_counts()
    obj = assignment(port)
    result = obj.reconcile_twice()
    assert result.reason == reasons.OWNED_ELSEWHERE
    assert result.needs_user_action
    assert "cluster west" in result.message
    assert ownership.ADOPT_ANNOTATION in result.message
    assert port.writes == 0
    assert description(port) == f"west's {marker('west/team/reader')}"
    assert "name" not in obj.status, "not this object's: it shares nothing"


def test_the_adopt_annotation_takes_an_assignment_over_and_rewrites_its_marker() -> None:
    port = FakeAuthorization()
    seed(port, f"west's {marker('west/team/reader')}")
    obj = assignment(port)
    obj.annotations[ownership.ADOPT_ANNOTATION] = "true"
    result = obj.reconcile_twice()
    assert result.ready
    assert reasons_of(result.changes) == [outcome.ADOPTED]
    assert description(port) == f"west's {marker('east/team/reader')}", "the text stays, the marker moves"
    assert obj.status["adopted"] is True


def test_deletion_leaves_another_clusters_assignment_and_says_so() -> None:
    port = FakeAuthorization()
    seed(port, marker("west/team/reader"))
    obj = assignment(port)
    obj.reconcile()
    port.reset_counts()
    removal = obj.remove()
    assert removal.done
    assert removal.warning is not None
    assert "left in Azure" in removal.warning
    assert port.calls["delete_role_assignment"] == 0
    assert len(port.at_scope(RG_SCOPE)) == 1


def test_a_shared_grant_of_one_cluster_keeps_the_first_objects_marker_while_it_declares_it() -> None:
    port = FakeAuthorization()
    first = assignment(port, name="first")
    first.reconcile()
    assert description(port) == marker("east/team/first")
    second = assignment(port, name="second")
    second.elsewhere[ASSIGNMENT] = ["team/first"]
    port.reset_counts()
    result = second.reconcile_twice()
    assert result.ready, "a sharer of the same cluster is not elsewhere"
    assert port.writes == 0
    assert description(port) == marker("east/team/first")

    # The first no longer declares it (deleted, its assignment kept for the second): the second is named.
    second.elsewhere.clear()
    assert reasons_of(second.reconcile_twice().changes) == [outcome.DRIFT_REPAIRED]
    assert description(port) == marker("east/team/second")
    first.elsewhere[ASSIGNMENT] = ["team/second"]
    port.reset_counts()
    assert first.reconcile_twice().ready
    assert port.writes == 0, "and the first, were it back, leaves the second's marker"


def test_deleting_a_sharer_keeps_the_grant_and_the_last_one_deletes_it() -> None:
    port = FakeAuthorization()
    first = assignment(port, name="first")
    first.reconcile()
    second = assignment(port, name="second")
    second.elsewhere[ASSIGNMENT] = ["team/first"]
    second.reconcile()
    first.elsewhere[ASSIGNMENT] = ["team/second"]
    assert first.remove().done
    assert len(port.at_scope(RG_SCOPE)) == 1, "the second still declares it"
    second.elsewhere.clear()
    removal = second.remove()
    assert removal.done
    assert removal.warning is None
    assert port.at_scope(RG_SCOPE) == [], "marked by this cluster's first object: this cluster's to delete"


def test_a_spec_description_carrying_a_marker_is_invalid() -> None:
    port = FakeAuthorization()
    result = assignment(port, description=f"x {marker('west/team/reader')}").reconcile()
    assert result.reason == reasons.INVALID_SPEC
    assert port.writes == 0


def test_the_assignment_drift_check_sees_a_missing_or_foreign_marker() -> None:
    port = FakeAuthorization()
    obj = assignment(port)
    obj.reconcile()

    def verdict() -> flow.Verdict:
        return asyncio.run(obj.hooks.survey([obj.state()]))["team/reader"]  # type: ignore[attr-defined]

    assert not verdict().drifted
    seed(port, "only text")
    assert verdict().drifted
    seed(port, f"only text {marker('east/team/reader')}")
    assert not verdict().drifted, "the text is the user's while the spec sets none"
    seed(port, marker("west/team/reader"))
    assert verdict().drifted
