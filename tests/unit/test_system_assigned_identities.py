"""The SystemAssignedIdentity reconciler on plain data: enable, report, keep others' identities, disable."""

from __future__ import annotations

import asyncio

import pytest

from azure_identity_operator.api.system_assigned_identity import InvalidSpecError, SystemAssignedIdentitySpec
from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.arm.resources import identity_type, parse_identity_type
from azure_identity_operator.handlers import system_assigned_identities as handlers
from azure_identity_operator.reconcilers import attachments
from azure_identity_operator.reconcilers import system_assigned_identities as reconciler
from azure_identity_operator.status import reasons

from .fake_resources import APP, SLOT, TENANT_ID, VM, VNET, FakeResourcePort, uai


def spec(resource_id: str, policy: str = "Delete") -> SystemAssignedIdentitySpec:
    return reconciler.parse_spec({"resourceId": resource_id, "deletionPolicy": policy})


@pytest.mark.parametrize("target", [VM, APP, SLOT])
def test_enables_and_reports_then_a_second_pass_writes_nothing(target: str) -> None:
    port = FakeResourcePort()
    port.add(target)
    first = asyncio.run(reconciler.reconcile(port, spec(target)))
    state = port.state(target)
    assert state is not None
    assert state.identity.system_assigned
    assert first.ready
    assert first.reason == reasons.SUCCEEDED
    assert first.observed["principalId"] == state.identity.principal_id
    assert first.observed["tenantId"] == TENANT_ID
    assert first.observed["resourceName"] == ("app1/staging" if target == SLOT else state.name)
    assert len(port.writes) == 1

    second = asyncio.run(reconciler.reconcile(port, spec(target)))
    assert second == first
    assert len(port.writes) == 1, "the second pass must not write"


def test_keeps_user_assigned_identities_and_the_type_right() -> None:
    port = FakeResourcePort()
    port.add(VM, user=(uai("theirs"),))
    result = asyncio.run(reconciler.reconcile(port, spec(VM)))
    assert result.ready
    (_, patch), *_ = port.writes
    assert patch.type == "SystemAssigned, UserAssigned"
    assert patch.user_assigned == {}, "must not re-send identities it does not own"
    state = port.state(VM)
    assert state is not None
    assert [a.id for a in state.identity.user_assigned] == [uai("theirs")]

    asyncio.run(reconciler.disable(port, spec(VM)))
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


def test_drift_disabled_behind_our_back_is_enabled_again_with_a_new_principal() -> None:
    port = FakeResourcePort()
    port.add(VM)
    first = asyncio.run(reconciler.reconcile(port, spec(VM)))
    port.set_identity(VM, system=False, user=())
    second = asyncio.run(reconciler.reconcile(port, spec(VM)))
    assert second.ready
    assert second.observed["principalId"] != first.observed["principalId"]
    assert len(port.writes) == 2


def test_resource_deleted_reports_it_and_drops_the_principal() -> None:
    port = FakeResourcePort()
    port.add(VM)
    asyncio.run(reconciler.reconcile(port, spec(VM)))
    port.delete(VM)
    result = asyncio.run(reconciler.reconcile(port, spec(VM)))
    assert not result.ready
    assert result.reason == reasons.RESOURCE_NOT_FOUND
    assert result.retry_after is None
    assert result.observed["principalId"] is None, "dependants must stop using the vanished principal"
    assert "does not exist" in result.message


def test_unsupported_type_is_reported_by_name() -> None:
    port = FakeResourcePort()
    port.add(VNET)
    result = asyncio.run(reconciler.reconcile(port, spec(VNET)))
    assert not result.ready
    assert result.reason == reasons.UNSUPPORTED_RESOURCE
    assert "Microsoft.Network/virtualNetworks" in result.message
    assert result.retry_after is None


def test_unknown_provider_is_unsupported() -> None:
    port = FakeResourcePort()
    target = VM.replace("Microsoft.Compute", "Contoso.Widgets")
    result = asyncio.run(reconciler.reconcile(port, spec(target)))
    assert result.reason == reasons.UNSUPPORTED_RESOURCE
    assert "Contoso.Widgets" in result.message


def test_transient_errors_propagate_for_the_runtime_to_classify() -> None:
    port = FakeResourcePort()
    port.add(VM)
    port.fail_next_patch = ArmError(status=503, code="ServiceUnavailable", message="try later")
    with pytest.raises(ArmError):
        asyncio.run(reconciler.reconcile(port, spec(VM)))


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


def test_concurrent_system_identity_and_two_attachments_converge() -> None:
    """Without the per-resource lock, each writer computes the type from a stale read and undoes another."""

    async def all_at_once(port: FakeResourcePort) -> None:
        await asyncio.gather(
            reconciler.reconcile(port, spec(VM)),
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


def test_other_objects_declaring_the_same_resource_are_found_case_insensitively() -> None:
    key = handlers.resource_key(VM.upper() + "/")
    indexes = {handlers.BY_RESOURCE_INDEX: {key: [("ns", "one"), ("other-ns", "two")]}}
    assert handlers.others_declaring(indexes, resource_id=VM, namespace="ns", name="one") == [
        ("other-ns", "two")
    ]
    assert handlers.others_declaring(indexes, resource_id=APP, namespace="ns", name="one") == []
    assert handlers.others_declaring({}, resource_id=VM, namespace="ns", name="one") == []
