"""`SystemAssignedIdentityHooks` run by the generic flow, on plain data: enable and report (a second pass
writes nothing and reports no change), keep others' identities, drift, a vanished or unsupported resource,
bad input, concurrent writers of one identity block, and removal: disable, unless another object declares
the same resource (`sharing_keys` + `ObjectState.shared_with`) or the policy is Orphan."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from azure_identity_operator.api.system_assigned_identity import InvalidSpecError, SystemAssignedIdentitySpec
from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.arm.resources import identity_type, parse_identity_type
from azure_identity_operator.reconcilers import attachments, flow
from azure_identity_operator.reconcilers import system_assigned_identities as reconciler
from azure_identity_operator.reconcilers.system_assigned_identities import SystemAssignedIdentityHooks
from azure_identity_operator.status import outcome, reasons

from .fake_resources import APP, SLOT, TENANT_ID, VM, VNET, FakeResourcePort, uai
from .objects import Life, object_state, reasons_of


def spec(resource_id: str, policy: str = "Delete") -> SystemAssignedIdentitySpec:
    return reconciler.parse_spec({"resourceId": resource_id, "deletionPolicy": policy})


def body(resource_id: str, **overrides: Any) -> dict[str, Any]:
    return {"resourceId": resource_id, **overrides}


def system_object(port: FakeResourcePort, resource_id: str, name: str = "vm", **overrides: Any) -> Life:
    return Life(
        SystemAssignedIdentityHooks(port),
        body(resource_id, **overrides),
        name=name,
        writes=lambda: len(port.writes),
    )


@pytest.mark.parametrize("target", [VM, APP, SLOT])
def test_enables_and_reports_then_a_second_pass_writes_nothing(target: str) -> None:
    port = FakeResourcePort()
    port.add(target)
    obj = system_object(port, target)
    first = obj.reconcile_twice()
    state = port.state(target)
    assert state is not None
    assert state.identity.system_assigned
    assert first.ready
    assert first.reason == reasons.SUCCEEDED
    assert first.observed["principalId"] == state.identity.principal_id
    assert first.observed["tenantId"] == TENANT_ID
    assert first.observed["resourceName"] == ("app1/staging" if target == SLOT else state.name)
    assert obj.status["principalId"] == state.identity.principal_id
    assert len(port.writes) == 1
    (enabled,) = first.changes
    assert enabled.reason == outcome.CREATED
    assert "enabled" in enabled.message


def test_an_identity_enabled_already_is_reported_without_a_change() -> None:
    port = FakeResourcePort()
    port.add(VM, system=True)
    result = system_object(port, VM).reconcile_twice()
    assert result.ready
    assert result.changes == ()
    assert port.writes == []


def test_keeps_user_assigned_identities_and_the_type_right() -> None:
    port = FakeResourcePort()
    port.add(VM, user=(uai("theirs"),))
    obj = system_object(port, VM)
    assert obj.reconcile().ready
    (_, patch), *_ = port.writes
    assert patch.type == "SystemAssigned, UserAssigned"
    assert patch.user_assigned == {}, "must not re-send identities it does not own"
    state = port.state(VM)
    assert state is not None
    assert [a.id for a in state.identity.user_assigned] == [uai("theirs")]

    removal = obj.remove()
    assert removal.done
    assert reasons_of(removal.result.changes) == [outcome.DELETED]
    state = port.state(VM)
    assert state is not None
    assert not state.identity.system_assigned
    assert [a.id for a in state.identity.user_assigned] == [uai("theirs")]
    assert port.writes[-1][1].type == "UserAssigned"


def test_disable_alone_sets_none_and_missing_resource_is_done() -> None:
    port = FakeResourcePort()
    port.add(APP, system=True)
    cleanup = asyncio.run(reconciler.disable(port, spec(APP)))
    assert cleanup.disabled
    assert port.writes[-1][1].type == "None"
    again = asyncio.run(reconciler.disable(port, spec(APP)))
    assert not again.disabled
    assert len(port.writes) == 1
    port.delete(APP)
    gone = asyncio.run(reconciler.disable(port, spec(APP)))
    assert not gone.disabled
    assert "no longer exists" in gone.message


def test_removal_of_an_identity_already_off_or_gone_is_done_without_a_change() -> None:
    port = FakeResourcePort()
    port.add(APP)
    obj = system_object(port, APP, name="app")
    off = obj.remove()
    assert off.done
    assert off.result.changes == ()
    port.delete(APP)
    gone = obj.remove()
    assert gone.done
    assert gone.result.changes == ()
    assert "no longer exists" in gone.result.message
    unsupported = system_object(port, VNET, name="net").remove()
    assert unsupported.done
    assert port.writes == []


def test_drift_disabled_behind_our_back_is_enabled_again_with_a_new_principal() -> None:
    port = FakeResourcePort()
    port.add(VM)
    obj = system_object(port, VM)
    first = obj.reconcile()
    port.set_identity(VM, system=False, user=())
    second = obj.reconcile_twice()
    assert second.ready
    assert second.observed["principalId"] != first.observed["principalId"]
    assert obj.status["principalId"] == second.observed["principalId"]
    assert len(port.writes) == 2
    (enabled,) = second.changes
    assert "enabled" in enabled.message


def test_resource_deleted_reports_it_and_drops_the_principal() -> None:
    port = FakeResourcePort()
    port.add(VM)
    obj = system_object(port, VM)
    obj.reconcile()
    assert "principalId" in obj.status
    port.delete(VM)
    result = obj.reconcile_twice()
    assert not result.ready
    assert result.reason == reasons.RESOURCE_NOT_FOUND
    assert result.needs_user_action
    assert result.retry_after is None
    assert result.observed["principalId"] is None, "dependants must stop using the vanished principal"
    assert "principalId" not in obj.status
    assert "does not exist" in result.message


def test_unsupported_type_is_reported_by_name() -> None:
    port = FakeResourcePort()
    port.add(VNET)
    result = system_object(port, VNET).reconcile()  # only Azure's refusal of the PATCH tells
    assert not result.ready
    assert result.reason == reasons.UNSUPPORTED_RESOURCE
    assert "Microsoft.Network/virtualNetworks" in result.message
    assert result.retry_after is None
    assert result.changes == ()


def test_unknown_provider_is_unsupported() -> None:
    port = FakeResourcePort()
    target = VM.replace("Microsoft.Compute", "Contoso.Widgets")
    result = system_object(port, target).reconcile()
    assert result.reason == reasons.UNSUPPORTED_RESOURCE
    assert "Contoso.Widgets" in result.message


def test_transient_errors_are_classified_by_the_flow_and_retried() -> None:
    port = FakeResourcePort()
    port.add(VM)
    port.fail_next_patch = ArmError(status=503, code="ServiceUnavailable", message="try later")
    with pytest.raises(ArmError):
        asyncio.run(reconciler.reconcile(port, spec(VM)))
    port.fail_next_patch = ArmError(status=503, code="ServiceUnavailable", message="try later")
    result = system_object(port, VM).reconcile()
    assert result.reason == reasons.AZURE_ERROR
    assert result.retry_after
    assert not result.needs_user_action
    assert result.message.startswith("enabling the system-assigned identity: ")
    assert result.changes == (), "the write failed: nothing changed in Azure"


@pytest.mark.parametrize(
    ("resource_id", "fragment"),
    [
        ("not-an-id", "must start with /subscriptions"),
        ("/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x", "GUID"),
        ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg", "resourceGroup ID"),
        (
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Web/sites",
            "name",
        ),
    ],
)
def test_bad_resource_ids_are_invalid_specs(resource_id: str, fragment: str) -> None:
    with pytest.raises(InvalidSpecError) as raised:
        reconciler.parse_spec({"resourceId": resource_id})
    assert "spec.resourceId" in str(raised.value)
    assert fragment in str(raised.value)
    port = FakeResourcePort()
    result = system_object(port, resource_id).reconcile_twice()
    assert result.reason == reasons.INVALID_SPEC
    assert fragment in result.message
    assert port.reads == []


def test_concurrent_system_identity_and_two_attachments_converge() -> None:
    """Without the per-resource lock, each writer computes the type from a stale read and undoes another."""

    async def all_at_once(port: FakeResourcePort) -> None:
        await asyncio.gather(
            flow.reconcile(
                SystemAssignedIdentityHooks(port), object_state("SystemAssignedIdentity", "vm", spec=body(VM))
            ),
            attachments.reconcile_attachments(port, identity_id=uai("a"), wanted=[VM], recorded=[]),
            attachments.reconcile_attachments(port, identity_id=uai("b"), wanted=[VM], recorded=[]),
        )

    locked = FakeResourcePort()
    locked.add(VM)
    asyncio.run(all_at_once(locked))
    state = locked.state(VM)
    assert state is not None
    assert state.identity.system_assigned
    assert sorted(a.id for a in state.identity.user_assigned) == [uai("a"), uai("b")]

    unlocked = FakeResourcePort(lock=False)
    unlocked.add(VM)
    asyncio.run(all_at_once(unlocked))
    racy = unlocked.state(VM)
    assert racy is not None
    assert not (racy.identity.system_assigned and len(racy.identity.user_assigned) == 2), (
        "the fake must be able to lose an update, or the test above proves nothing"
    )


@pytest.mark.parametrize(
    ("system", "user", "like", "expected"),
    [
        (True, True, "SystemAssigned, UserAssigned", "SystemAssigned, UserAssigned"),
        (True, True, "SystemAssigned,UserAssigned", "SystemAssigned,UserAssigned"),
        (True, True, "None", "SystemAssigned, UserAssigned"),
        (True, False, "SystemAssigned,UserAssigned", "SystemAssigned"),
        (False, True, "SystemAssigned, UserAssigned", "UserAssigned"),
        (False, False, "UserAssigned", "None"),
    ],
)
def test_identity_type_spelling(system: bool, user: bool, like: str, expected: str) -> None:
    assert identity_type(system_assigned=system, user_assigned=user, like=like) == expected
    assert parse_identity_type(expected) == (system, user)


def test_unknown_deletion_policy_is_an_invalid_spec() -> None:
    with pytest.raises(InvalidSpecError, match=r"spec\.deletionPolicy"):
        reconciler.parse_spec({"resourceId": VM, "deletionPolicy": "Keep"})
    with pytest.raises(InvalidSpecError, match=r"spec\.resourceId"):
        reconciler.parse_spec({})


def test_removal_with_orphan_policy_or_a_spec_never_valid_leaves_the_identity() -> None:
    port = FakeResourcePort()
    port.add(VM)
    obj = system_object(port, VM, deletionPolicy="Orphan")
    obj.reconcile()
    writes = len(port.writes)
    assert obj.remove().done
    invalid = system_object(port, VM, deletionPolicy="Keep")
    assert invalid.remove().done
    assert len(port.writes) == writes
    state = port.state(VM)
    assert state is not None
    assert state.identity.system_assigned


def test_objects_declaring_the_same_resource_share_one_key_whatever_the_spelling() -> None:
    hooks = SystemAssignedIdentityHooks(FakeResourcePort())

    def keys(resource_id: Any) -> tuple[str, ...]:
        return tuple(hooks.sharing_keys(object_state("SystemAssignedIdentity", "x", spec=body(resource_id))))

    assert keys(VM.upper() + "/") == keys(VM)
    assert len(keys(VM)) == 1
    assert keys(APP) != keys(VM)
    assert keys("") == ()
    assert keys(None) == ()


def test_removal_leaves_the_identity_enabled_while_another_object_declares_the_resource() -> None:
    port = FakeResourcePort()
    port.add(VM)
    obj = system_object(port, VM)
    obj.reconcile()
    (key,) = obj.hooks.sharing_keys(obj.state())
    obj.elsewhere[key] = ["other-ns/two"]
    writes = len(port.writes)
    removal = obj.remove()
    assert removal.done
    assert removal.result.changes == ()
    assert "other-ns/two" in removal.result.message
    assert len(port.writes) == writes
    state = port.state(VM)
    assert state is not None
    assert state.identity.system_assigned
    obj.elsewhere.clear()
    assert reasons_of(obj.remove().result.changes) == [outcome.DELETED]
