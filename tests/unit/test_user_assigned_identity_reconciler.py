"""`UserAssignedIdentityHooks` run by the generic flow, with plain data: create, adopt, converge tags,
drift, bad input, Azure's refusals, the changes each pass reports, exporting the IDs (under the default
or the named keys), attaching, and removal (deletion policy, a spec that was never valid, already gone,
refused, force-deleted, never owned). Every reconcile scenario runs a second time, which must write
nothing and report no change."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.arm.identities import IdentityRef
from azure_identity_operator.reconcilers import flow, ownership
from azure_identity_operator.reconcilers.kube_port import ClusterIdentity, KubernetesError
from azure_identity_operator.reconcilers.user_assigned_identities import UserAssignedIdentityHooks
from azure_identity_operator.status import outcome, reasons

from .fake_resources import VM, FakeResourcePort
from .fakes import TENANT_ID, FakeIdentityPort
from .objects import Life, reasons_of

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
REF = IdentityRef(SUBSCRIPTION, "rg-apps", "payments")
CLUSTER = "east"
MARKER = {ownership.OWNER_TAG: "east/team/payments"}
"""The ownership marker of object team/payments in cluster east, as the identity's tag."""


def spec(**overrides: Any) -> dict[str, Any]:
    return {"resourceGroup": "rg-apps", "location": "westeurope", "tags": {"team": "pay"}, **overrides}


class FakeConfigMaps:
    """`ConfigMapPort` in memory: the ConfigMaps written, and a refusal to raise instead."""

    def __init__(self) -> None:
        self.maps: dict[tuple[str, str], dict[str, str]] = {}
        self.owners: dict[tuple[str, str], Mapping[str, str] | None] = {}
        self.writes = 0
        self.refusal: KubernetesError | None = None

    async def export_config_map(
        self, *, namespace: str, name: str, data: Mapping[str, str], owner: Mapping[str, str] | None
    ) -> bool:
        if self.refusal is not None:
            raise self.refusal
        merged = {**self.maps.get((namespace, name), {}), **data}
        if self.maps.get((namespace, name)) == merged:
            return False
        self.maps[(namespace, name)] = merged
        self.owners[(namespace, name)] = owner
        self.writes += 1
        return True


def identity_object(
    port: FakeIdentityPort,
    body: Mapping[str, Any],
    name: str = "payments",
    *,
    resources: FakeResourcePort | None = None,
    config_maps: FakeConfigMaps | None = None,
    cluster: str | None = CLUSTER,
) -> Life:
    resources = resources or FakeResourcePort()
    hooks = UserAssignedIdentityHooks(
        port,
        resources,
        config_maps,
        default_subscription_id=SUBSCRIPTION,
        default_tenant_id=TENANT_ID,
        cluster=ClusterIdentity(cluster),
    )
    return Life(
        hooks,
        body,
        name=name,
        writes=lambda: len(port.writes) + len(resources.writes) + (config_maps.writes if config_maps else 0),
    )


def test_creates_the_identity_and_reports_its_ids() -> None:
    port = FakeIdentityPort()
    obj = identity_object(port, spec())
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
    assert identity.tags == {"team": "pay", **MARKER}, "created with the spec's tags and the marker"
    assert port.writes_of("create_or_update_identity") == [REF.id]
    (created,) = result.changes
    assert created.reason == outcome.CREATED
    assert "'payments'" in created.message
    assert identity.principal_id in created.message


def test_azure_name_and_subscription_override_the_defaults() -> None:
    port = FakeIdentityPort()
    other = "11111111-2222-3333-4444-555555555555"
    obj = identity_object(port, spec(azureName="id-payments-prod", subscriptionId=other))
    assert reasons_of(obj.reconcile_twice().changes) == [outcome.CREATED]
    assert port.identity(IdentityRef(other, "rg-apps", "id-payments-prod")) is not None


def test_adopts_an_existing_unmarked_identity_keeping_its_ids_and_marks_it() -> None:
    port = FakeIdentityPort()
    existing = port.put_identity_directly(REF, location="westeurope", tags={"team": "pay"})
    obj = identity_object(port, spec())
    result = obj.reconcile_twice()
    assert result.ready
    assert obj.status["adopted"] is True
    assert obj.status["principalId"] == existing.principal_id
    assert port.writes_of("update_identity_tags") == [REF.id], "one PATCH: the marker"
    assert port.writes_of("create_or_update_identity") == []
    assert port.identity(REF).tags == {"team": "pay", **MARKER}  # type: ignore[union-attr]
    assert reasons_of(result.changes) == [outcome.ADOPTED]
    assert "no ownership marker" in result.changes[0].message
    assert "adopted" in result.message


def test_converges_tags_with_a_patch_and_nothing_else() -> None:
    port = FakeIdentityPort()
    obj = identity_object(port, spec())
    obj.reconcile()
    principal = obj.status["principalId"]
    obj.spec = spec(tags={"team": "pay", "env": "prod"})
    result = obj.reconcile_twice()
    assert port.identity(REF).tags == {"team": "pay", "env": "prod", **MARKER}  # type: ignore[union-attr]
    assert port.writes_of("update_identity_tags") == [REF.id]
    assert len(port.writes_of("create_or_update_identity")) == 1
    assert obj.status["principalId"] == principal
    assert reasons_of(result.changes) == [outcome.UPDATED], "a user's change, not drift"


def test_tags_changed_behind_our_back_are_repaired() -> None:
    port = FakeIdentityPort()
    obj = identity_object(port, spec())
    obj.reconcile()
    asyncio.run(port.update_identity_tags(REF, tags={"team": "someone-else", **MARKER}))
    result = obj.reconcile_twice()
    assert port.identity(REF).tags == {"team": "pay", **MARKER}  # type: ignore[union-attr]
    (repaired,) = result.changes
    assert repaired.reason == outcome.DRIFT_REPAIRED
    assert "changed in Azure" in repaired.message


def test_identity_deleted_behind_our_back_is_recreated_with_new_ids_reported() -> None:
    port = FakeIdentityPort()
    obj = identity_object(port, spec())
    obj.reconcile()
    old_principal = obj.status["principalId"]
    port.delete_identity_directly(REF)
    result = obj.reconcile_twice()
    assert result.ready
    assert obj.status["principalId"] != old_principal
    assert obj.status["principalId"] == port.identity(REF).principal_id  # type: ignore[union-attr]
    assert obj.status["adopted"] is False
    (recreated,) = result.changes
    assert recreated.reason == outcome.RECREATED
    assert obj.status["principalId"] in recreated.message


def test_renaming_the_identity_creates_the_new_one_as_created_not_recreated() -> None:
    port = FakeIdentityPort()
    obj = identity_object(port, spec())
    obj.reconcile()
    obj.spec = spec(azureName="payments-v2")
    result = obj.reconcile()
    assert result.ready
    assert reasons_of(result.changes) == [outcome.CREATED]


def test_an_identity_in_another_location_is_a_conflict_not_a_move() -> None:
    port = FakeIdentityPort()
    port.put_identity_directly(REF, location="eastus", tags={})
    result = identity_object(port, spec()).reconcile_twice()
    assert not result.ready
    assert result.reason == reasons.CONFLICT
    assert result.needs_user_action
    assert result.retry_after is None
    assert "eastus" in result.message
    assert port.writes == []


def test_location_spelling_does_not_count_as_a_difference() -> None:
    port = FakeIdentityPort()
    port.put_identity_directly(REF, location="westeurope", tags={"team": "pay", **MARKER})
    result = identity_object(port, spec(location="West Europe")).reconcile_twice()
    assert result.ready
    assert result.changes == ()


@pytest.mark.parametrize(
    ("name", "overrides", "needle"),
    [
        ("my.identity", {}, "metadata.name"),
        ("payments", {"azureName": "x"}, "spec.azureName"),
        ("payments", {"resourceGroup": "bad/group"}, "spec.resourceGroup"),
        ("payments", {"subscriptionId": "not-a-guid"}, "spec.subscriptionId"),
        ("payments", {"location": None}, "spec.location"),
        ("payments", {"deletionPolicy": "Keep"}, "spec.deletionPolicy"),
        (
            "payments",
            {"exportTo": {"configMap": {"name": "ids", "keys": {"clientId": "ID", "tenantId": "ID"}}}},
            "spec.exportTo.configMap.keys: clientId and tenantId are exported under the same key 'ID': "
            "each ID needs a key of its own",
        ),
        (
            "payments",
            {"exportTo": {"configMap": {"name": "ids", "keys": {"clientId": "AZURE CLIENT ID"}}}},
            "spec.exportTo.configMap.keys.clientId",
        ),
        (
            "payments",
            {"exportTo": {"configMap": {"name": "ids", "keys": {"tenantId": "..tenant"}}}},
            "spec.exportTo.configMap.keys: tenantId: '..tenant' is not a ConfigMap key",
        ),
        ("payments", {"exportTo": {"configMap": {"name": "ids", "keys": {}}}}, "name at least one of"),
    ],
)
def test_bad_input_is_invalid_spec_without_any_azure_call(
    name: str, overrides: dict[str, Any], needle: str
) -> None:
    port = FakeIdentityPort()
    result = identity_object(port, spec(**overrides), name=name).reconcile_twice()
    assert not result.ready
    assert result.reason == reasons.INVALID_SPEC
    assert needle in result.message
    assert result.retry_after is None
    assert port.writes == []
    assert port.reads == []


def test_missing_resource_group_needs_the_user_and_is_retried_slowly() -> None:
    port = FakeIdentityPort(any_group=False)
    result = identity_object(port, spec()).reconcile_twice()
    assert result.reason == reasons.RESOURCE_GROUP_NOT_FOUND
    assert result.needs_user_action
    assert result.retry_after == 60
    assert "rg-apps" in result.message
    assert "Create resource group" in result.message
    port.add_resource_group(SUBSCRIPTION, "rg-apps")
    assert identity_object(port, spec()).reconcile().ready


def test_an_unknown_subscription_has_its_own_reason_and_names_the_field() -> None:
    port = FakeIdentityPort()
    port.fail_next(
        "get_identity",
        ArmError(status=404, code="SubscriptionNotFound", message="The subscription could not be found."),
        times=2,
    )
    result = identity_object(port, spec()).reconcile_twice()
    assert result.reason == reasons.SUBSCRIPTION_NOT_FOUND
    assert result.needs_user_action
    assert result.retry_after == 60
    assert "spec.subscriptionId" in result.message


def test_transient_and_throttled_failures_retry() -> None:
    port = FakeIdentityPort()
    port.fail_next("create_or_update_identity", ArmError(status=503, code="ServiceUnavailable", message="x"))
    result = identity_object(port, spec()).reconcile()
    assert result.reason == reasons.AZURE_ERROR
    assert result.retry_after
    assert not result.needs_user_action
    assert result.changes == ()
    port.fail_next("get_identity", ArmError(status=429, code="Throttled", message="x", retry_after=7))
    result = identity_object(port, spec()).reconcile()
    assert result.reason == reasons.THROTTLED
    assert result.retry_after == 7


def test_a_transient_failure_keeps_the_user_hint_out_of_the_message() -> None:
    port = FakeIdentityPort()
    port.fail_next("get_identity", ArmError(status=503, code="ResourceGroupNotFound", message="flaky"))
    result = identity_object(port, spec()).reconcile()
    assert result.reason == reasons.AZURE_ERROR
    assert "Create resource group" not in result.message


def test_authorization_failure_needs_the_user_and_is_retried_slowly() -> None:
    port = FakeIdentityPort()
    port.fail_next(
        "create_or_update_identity",
        ArmError(status=403, code="AuthorizationFailed", message="does not have authorization"),
    )
    result = identity_object(port, spec()).reconcile()
    assert result.reason == reasons.AUTHORIZATION_FAILED
    assert result.needs_user_action
    assert result.retry_after == 60
    assert result.changes == ()


def test_the_ids_are_exported_to_the_config_map_named_in_the_spec() -> None:
    port = FakeIdentityPort()
    config_maps = FakeConfigMaps()
    obj = identity_object(
        port, spec(exportTo={"configMap": {"name": "payments-ids"}}), config_maps=config_maps
    )
    result = obj.reconcile_twice()
    assert result.ready
    identity = port.identity(REF)
    assert identity is not None
    assert config_maps.maps[("team", "payments-ids")] == {
        "clientId": identity.client_id,
        "principalId": identity.principal_id,
        "tenantId": TENANT_ID,
        "resourceId": REF.id,
    }
    owner = config_maps.owners[("team", "payments-ids")]
    assert owner is not None
    assert owner["kind"] == "UserAssignedIdentity"
    assert (owner["name"], owner["uid"]) == ("payments", obj.state().uid)


def test_named_keys_export_exactly_those_ids_under_those_keys() -> None:
    port = FakeIdentityPort()
    config_maps = FakeConfigMaps()
    keys = {"clientId": "AZURE_CLIENT_ID", "tenantId": "AZURE_TENANT_ID"}
    obj = identity_object(
        port, spec(exportTo={"configMap": {"name": "payments-env", "keys": keys}}), config_maps=config_maps
    )
    assert obj.reconcile_twice().ready
    identity = port.identity(REF)
    assert identity is not None
    assert config_maps.maps[("team", "payments-env")] == {
        "AZURE_CLIENT_ID": identity.client_id,
        "AZURE_TENANT_ID": TENANT_ID,
    }
    assert config_maps.writes == 1


def test_changed_keys_add_the_new_ones_and_keep_the_keys_exported_before() -> None:
    """The operator only adds and updates the keys it exports: a key the spec no longer names may be read
    by a workload, and the ConfigMap may hold keys others wrote; it is left as it is."""
    port = FakeIdentityPort()
    config_maps = FakeConfigMaps()
    obj = identity_object(
        port,
        spec(exportTo={"configMap": {"name": "payments-env", "keys": {"clientId": "AZURE_CLIENT_ID"}}}),
        config_maps=config_maps,
    )
    obj.reconcile()
    keys = {"clientId": "CLIENT_ID", "resourceId": "AZURE_RESOURCE_ID"}
    obj.spec = spec(exportTo={"configMap": {"name": "payments-env", "keys": keys}})
    assert obj.reconcile_twice().ready
    identity = port.identity(REF)
    assert identity is not None
    assert config_maps.maps[("team", "payments-env")] == {
        "AZURE_CLIENT_ID": identity.client_id,
        "CLIENT_ID": identity.client_id,
        "AZURE_RESOURCE_ID": REF.id,
    }
    assert config_maps.writes == 2


def test_a_config_map_the_api_server_refuses_is_an_invalid_spec_that_keeps_the_ids() -> None:
    port = FakeIdentityPort()
    config_maps = FakeConfigMaps()
    config_maps.refusal = KubernetesError(422, "metadata.name: Invalid value: 'Bad_Name'")
    obj = identity_object(port, spec(exportTo={"configMap": {"name": "Bad_Name"}}), config_maps=config_maps)
    result = obj.reconcile_twice()
    assert result.reason == reasons.INVALID_SPEC
    assert "spec.exportTo.configMap.name" in result.message
    assert obj.status["id"] == REF.id, "without the IDs the next pass would take its own identity as adopted"
    assert obj.status["adopted"] is False
    assert reasons_of(result.changes) == [outcome.CREATED], "the identity was created all the same"

    config_maps.refusal = KubernetesError(None, "connection refused")
    unreachable = obj.reconcile()
    assert unreachable.reason == reasons.OPERATOR_ERROR
    assert unreachable.retry_after == flow.UNEXPECTED_ERROR_RETRY_SECONDS


def test_the_identity_is_attached_to_the_resources_the_spec_lists() -> None:
    port = FakeIdentityPort()
    resources = FakeResourcePort()
    resources.add(VM, system=True)
    obj = identity_object(port, spec(attachTo=[VM]), resources=resources)
    result = obj.reconcile_twice()
    assert result.ready
    assert "attached to 1 resource(s)" in result.message
    state = resources.state(VM)
    assert state is not None
    assert [a.id for a in state.identity.user_assigned] == [REF.id]
    assert state.identity.system_assigned
    assert reasons_of(result.changes) == [outcome.CREATED, outcome.UPDATED]
    assert obj.status["attachments"] == [
        {"resourceId": VM, "state": "Attached", "reason": reasons.SUCCEEDED, "message": "attached to vm1"}
    ]


def test_removal_deletes_the_identity_and_a_second_removal_is_done_too() -> None:
    port = FakeIdentityPort()
    obj = identity_object(port, spec())
    obj.reconcile()
    removal = obj.remove()
    assert removal.done
    assert removal.warning is None
    assert port.identity(REF) is None
    assert reasons_of(removal.result.changes) == [outcome.DELETED]
    again = obj.remove()  # already gone counts as done
    assert again.done
    assert again.result.changes == ()


def test_removal_detaches_the_identity_first_and_waits_while_a_detach_fails() -> None:
    port = FakeIdentityPort()
    resources = FakeResourcePort()
    resources.add(VM)
    obj = identity_object(port, spec(attachTo=[VM]), resources=resources)
    obj.reconcile()
    resources.fail_next_patch = ArmError(status=403, code="AuthorizationFailed", message="no rights")
    blocked = obj.remove()
    assert not blocked.done
    assert blocked.result.reason == reasons.DELETION_BLOCKED
    assert blocked.result.retry_after
    assert port.identity(REF) is not None, "never deleted while a resource still names it"
    assert obj.status["attachments"][0]["state"] == "Detaching"
    removal = obj.remove()
    assert removal.done
    assert port.identity(REF) is None
    state = resources.state(VM)
    assert state is not None
    assert state.identity.user_assigned == ()


def test_removal_with_orphan_policy_leaves_the_identity() -> None:
    port = FakeIdentityPort()
    obj = identity_object(port, spec(deletionPolicy="Orphan"))
    obj.reconcile()
    removal = obj.remove()
    assert removal.done
    assert "Orphan" in removal.result.message
    assert port.identity(REF) is not None
    assert port.writes_of("delete_identity") == []


def test_removal_of_an_object_that_never_was_valid_touches_nothing() -> None:
    port = FakeIdentityPort()
    obj = identity_object(port, spec(), name="bad.name")
    obj.reconcile()
    assert obj.remove().done
    assert port.writes == []
    assert port.reads == []


@pytest.mark.parametrize("method", ["get_identity", "delete_identity"])
def test_removal_when_the_resource_group_is_gone_is_done(method: str) -> None:
    port = FakeIdentityPort()
    obj = identity_object(port, spec())
    obj.reconcile()
    port.fail_next(method, ArmError(status=404, code="ResourceGroupNotFound", message="gone"))
    removal = obj.remove()
    assert removal.done
    assert removal.warning is None


def test_blocked_removal_explains_itself_retries_and_yields_to_force_delete() -> None:
    port = FakeIdentityPort()
    obj = identity_object(port, spec())
    obj.reconcile()
    port.fail_next("delete_identity", ArmError(status=403, code="AuthorizationFailed", message="denied"))
    blocked = obj.remove()
    assert not blocked.done
    assert blocked.result.reason == reasons.DELETION_BLOCKED
    assert blocked.result.retry_after == flow.DELETION_RETRY_SECONDS
    assert "denied" in blocked.result.message
    assert "Orphan" in blocked.result.message
    assert flow.FORCE_DELETE_ANNOTATION in blocked.result.message
    assert port.identity(REF) is not None

    port.fail_next("delete_identity", ArmError(status=403, code="AuthorizationFailed", message="denied"))
    forced = obj.remove(annotations={flow.FORCE_DELETE_ANNOTATION: "true"})
    assert forced.done
    assert forced.warning is not None
    assert "may remain in Azure" in forced.warning
    assert port.identity(REF) is not None


def test_removal_never_deletes_a_same_named_identity_it_never_owned() -> None:
    port = FakeIdentityPort()
    port.put_identity_directly(REF, location="eastus", tags={})
    obj = identity_object(port, spec())  # westeurope: a Conflict, nothing recorded
    assert obj.reconcile().reason == reasons.CONFLICT
    assert "id" not in obj.status
    removal = obj.remove()
    assert removal.done
    assert removal.result.changes == ()
    assert port.identity(REF) is not None
    assert port.writes == []


def test_removal_after_a_crash_before_the_status_write_deletes_the_matching_identity() -> None:
    port = FakeIdentityPort()
    asyncio.run(port.create_or_update_identity(REF, location="westeurope", tags={"team": "pay"}))
    obj = identity_object(port, spec())  # the status write never happened
    assert obj.remove().done
    assert port.identity(REF) is None


def test_removal_never_follows_a_status_pointed_at_another_identity() -> None:
    port = FakeIdentityPort()
    theirs = IdentityRef(SUBSCRIPTION, "rg-other", "theirs")
    port.put_identity_directly(theirs, location="westeurope", tags={})
    obj = identity_object(port, spec())
    obj.status = {"id": theirs.id, "principalId": "p"}  # written by someone allowed to patch /status
    assert obj.remove().done
    assert port.identity(theirs) is not None
    assert port.writes_of("delete_identity") == []
