"""Attaching a user-assigned identity to resources and detaching it, keeping everyone else's identities;
which passes changed an identity block (`changed`, reported as `Updated` changes); and detaching before
deletion, from the identity Azure reports, never one a status names."""

from __future__ import annotations

import asyncio
import dataclasses

from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.reconcilers import attachments
from azure_identity_operator.status import outcome, reasons

from .fake_resources import APP, SLOT, VM, VNET, FakeResourcePort, uai

OURS = uai("ours")


def attached_ids(port: FakeResourcePort, resource_id: str) -> list[str]:
    state = port.state(resource_id)
    assert state is not None
    return [a.id for a in state.identity.user_assigned]


def run(
    port: FakeResourcePort, wanted: list[str], recorded: list[str] | None = None
) -> attachments.AttachmentsResult:
    return asyncio.run(
        attachments.reconcile_attachments(port, identity_id=OURS, wanted=wanted, recorded=recorded or [])
    )


def test_attach_merges_into_existing_identities_and_a_second_pass_writes_nothing() -> None:
    port = FakeResourcePort()
    port.add(VM, system=True, user=(uai("theirs"),))
    port.add(APP, system=True)
    result = run(port, [VM, APP])
    assert [s.state for s in result.states] == ["Attached", "Attached"]
    assert result.problem() is None
    assert attached_ids(port, VM) == [uai("theirs"), OURS]
    assert attached_ids(port, APP) == [OURS]
    vm, app = port.state(VM), port.state(APP)
    assert vm is not None
    assert vm.identity.system_assigned
    assert app is not None
    assert app.identity.system_assigned
    assert [patch.type for _, patch in port.writes] == ["SystemAssigned, UserAssigned"] * 2
    assert all(patch.user_assigned == {OURS: True} for _, patch in port.writes)

    assert [s.changed for s in result.states] == [True, True]
    assert [c.reason for c in result.changes] == [outcome.UPDATED, outcome.UPDATED]

    writes = len(port.writes)
    again = run(port, [VM, APP], [s.resource_id for s in result.states])
    assert again.states == tuple(dataclasses.replace(s, changed=False) for s in result.states)
    assert again.changes == ()
    assert len(port.writes) == writes, "the second pass must not write"


def test_detach_on_removal_keeps_others_and_fixes_the_type() -> None:
    port = FakeResourcePort()
    port.add(VM, system=True, user=(uai("theirs"),))
    port.add(APP, system=True)
    port.add(SLOT)
    run(port, [VM, APP, SLOT])

    result = run(port, [], [VM, APP, SLOT])
    assert result.states == ()
    assert result.status_field is None
    assert attached_ids(port, VM) == [uai("theirs")]
    assert attached_ids(port, APP) == []
    assert attached_ids(port, SLOT) == []
    by_target = {target: patch for target, patch in port.writes[3:]}
    assert by_target[VM].type == "SystemAssigned, UserAssigned"
    assert by_target[VM].user_assigned == {OURS: False}
    assert by_target[APP].type == "SystemAssigned"
    assert by_target[APP].user_assigned == {}
    assert by_target[SLOT].type == "None"
    vm, app = port.state(VM), port.state(APP)
    assert vm is not None
    assert vm.identity.system_assigned
    assert app is not None
    assert app.identity.system_assigned


def test_detach_all_on_deletion_and_gone_resources_are_done() -> None:
    port = FakeResourcePort()
    port.add(VM)
    port.add(APP)
    run(port, [VM, APP])
    port.delete(APP)
    result = asyncio.run(attachments.detach_all(port, identity_id=OURS, resource_ids=[VM, APP]))
    assert result.states == ()
    assert attached_ids(port, VM) == []


def test_detached_behind_our_back_is_attached_again() -> None:
    port = FakeResourcePort()
    port.add(VM, user=(uai("theirs"),))
    run(port, [VM])
    port.set_identity(VM, system=False, user=(uai("theirs"),))
    result = run(port, [VM], [VM])
    assert result.states[0].state == "Attached"
    assert attached_ids(port, VM) == [uai("theirs"), OURS]


def test_failures_are_reported_per_resource_and_decide_ready() -> None:
    port = FakeResourcePort()
    port.add(VM)
    port.add(VNET)
    missing = APP
    result = run(port, [VM, missing, VNET, "/subscriptions/nope", VM.upper()])
    by_id = {s.resource_id: s for s in result.states}
    assert len(result.states) == 4, "the same resource in another casing is listed once"
    assert by_id[VM].state == "Attached"
    assert by_id[missing].state == "Failed"
    assert by_id[missing].reason == reasons.RESOURCE_NOT_FOUND
    assert by_id[VNET].reason == reasons.UNSUPPORTED_RESOURCE
    assert "Microsoft.Network/virtualNetworks" in by_id[VNET].message
    assert by_id["/subscriptions/nope"].reason == reasons.INVALID_SPEC
    problem = result.problem()
    assert problem is not None
    assert not problem.ready
    assert problem.retry_after is None
    assert missing in problem.message
    assert VNET in problem.message

    identity_ready = outcome.succeeded("identity ready", {"id": OURS})
    combined = result.combine(identity_ready)
    assert not combined.ready
    assert combined.reason == reasons.RESOURCE_NOT_FOUND
    assert combined.observed["id"] == OURS
    assert [a["state"] for a in combined.observed["attachments"]] == [
        "Attached",
        "Failed",
        "Failed",
        "Failed",
    ]


def test_transient_failures_retry_and_a_removed_failure_is_forgotten() -> None:
    port = FakeResourcePort()
    port.add(VM)
    port.fail_next_patch = ArmError(status=503, code="ServiceUnavailable", message="busy")
    result = run(port, [VM])
    problem = result.problem()
    assert problem is not None
    assert problem.reason == reasons.AZURE_ERROR
    assert problem.retry_after
    healed = run(port, [VM], [VM])
    assert healed.problem() is None
    assert run(port, [], [VM]).states == ()


def test_a_failed_detach_is_kept_for_the_next_pass() -> None:
    port = FakeResourcePort()
    port.add(VM)
    run(port, [VM])
    port.fail_next_patch = ArmError(status=403, code="AuthorizationFailed", message="no rights")
    result = run(port, [], [VM])
    (state,) = result.states
    assert state.state == "Detaching"
    assert state.reason == reasons.AUTHORIZATION_FAILED
    assert attached_ids(port, VM) == [OURS]
    assert run(port, [], [VM]).states == ()
    assert attached_ids(port, VM) == []


def test_identity_not_ready_dominates_attachment_state() -> None:
    port = FakeResourcePort()
    result = run(port, [VM])
    not_ready = outcome.not_ready(reasons.RESOURCE_GROUP_NOT_FOUND, "no group")
    combined = result.combine(not_ready)
    assert combined.reason == reasons.RESOURCE_GROUP_NOT_FOUND
    assert combined.observed["attachments"][0]["state"] == "Failed"


def test_recorded_resource_ids_reads_the_previous_status() -> None:
    assert attachments.recorded_resource_ids([{"resourceId": VM, "state": "Attached"}, {"state": "x"}]) == [
        VM
    ]
    assert attachments.recorded_resource_ids(None) == []


def test_identity_reconcile_attaches_only_once_the_identity_is_ready() -> None:
    port = FakeResourcePort()
    port.add(VM)
    waiting = outcome.not_ready(reasons.RESOURCE_GROUP_NOT_FOUND, "no group")
    previous = {"attachments": [{"resourceId": APP, "state": "Attached"}]}
    result = asyncio.run(
        attachments.reconcile_for_identity(port, identity_outcome=waiting, attach_to=[VM], status=previous)
    )
    assert result == waiting, "the previous status.attachments stands while the identity is not Ready"
    assert port.writes == []

    ready = outcome.succeeded("identity ready", {"id": OURS})
    result = asyncio.run(
        attachments.reconcile_for_identity(port, identity_outcome=ready, attach_to=[VM], status={})
    )
    assert result.ready
    assert result.observed["attachments"][0]["resourceId"] == VM
    assert "attached to 1 resource(s)" in result.message
    assert attached_ids(port, VM) == [OURS]


def test_deletion_detaches_from_recorded_and_listed_resources() -> None:
    port = FakeResourcePort()
    port.add(VM, system=True)
    port.add(APP, user=(uai("theirs"),))
    run(port, [VM, APP])
    status = {"id": OURS, "attachments": [{"resourceId": APP, "state": "Attached"}]}
    detached = asyncio.run(
        attachments.detach_before_deletion(port, identity_id=OURS, attach_to=[VM], status=status)
    )
    assert detached is None
    assert attached_ids(port, VM) == []
    assert attached_ids(port, APP) == [uai("theirs")]
    vm = port.state(VM)
    assert vm is not None
    assert vm.identity.system_assigned

    writes = len(port.writes)
    again = asyncio.run(attachments.detach_before_deletion(port, identity_id=OURS, attach_to=[VM], status={}))
    assert again is None
    assert len(port.writes) == writes, "nothing left to detach"


def test_deletion_detaches_only_the_identity_azure_reports_never_one_a_status_names() -> None:
    port = FakeResourcePort()
    port.add(VM, user=(uai("theirs"),))
    status = {"id": uai("theirs"), "attachments": [{"resourceId": VM, "state": "Attached"}]}
    detached = asyncio.run(
        attachments.detach_before_deletion(port, identity_id=OURS, attach_to=[], status=status)
    )
    assert detached is None
    assert attached_ids(port, VM) == [uai("theirs")]
    assert port.writes == []


def test_deletion_is_blocked_while_a_detach_fails() -> None:
    port = FakeResourcePort()
    port.add(VM)
    run(port, [VM])
    port.fail_next_patch = ArmError(status=403, code="AuthorizationFailed", message="no rights")
    blocked = asyncio.run(
        attachments.detach_before_deletion(port, identity_id=OURS, attach_to=[VM], status={"id": OURS})
    )
    assert blocked is not None
    assert blocked.reason == reasons.DELETION_BLOCKED
    assert blocked.retry_after
    assert "Orphan" in blocked.message
    assert blocked.observed["attachments"][0]["state"] == "Detaching"


def test_an_identity_created_again_under_the_same_id_is_attached_anew() -> None:
    port = FakeResourcePort()
    port.add(VM, system=True, user=(uai("theirs"),))
    port.identity_principals[OURS.lower()] = "principal-1"
    ready = outcome.succeeded("ready", {"id": OURS, "principalId": "principal-1"})
    asyncio.run(attachments.reconcile_for_identity(port, identity_outcome=ready, attach_to=[VM], status={}))
    assert len(port.writes) == 1

    # Deleted and created again behind our back: same ID, new principal; the VM still names the old one.
    port.identity_principals[OURS.lower()] = "principal-2"
    again = outcome.succeeded("ready", {"id": OURS, "principalId": "principal-2"})
    result = asyncio.run(
        attachments.reconcile_for_identity(port, identity_outcome=again, attach_to=[VM], status={})
    )
    assert result.ready
    assert [c.reason for c in result.changes] == [outcome.UPDATED]
    assert [patch.user_assigned for _, patch in port.writes[1:]] == [{OURS: False}, {OURS: True}]
    vm = port.state(VM)
    assert vm is not None
    assert vm.identity.system_assigned
    assert [(a.id, a.principal_id) for a in vm.identity.user_assigned] == [
        (uai("theirs"), None),
        (OURS, "principal-2"),
    ]
    writes = len(port.writes)
    settled = asyncio.run(
        attachments.reconcile_for_identity(port, identity_outcome=again, attach_to=[VM], status={})
    )
    assert len(port.writes) == writes
    assert settled.changes == ()


def test_the_identity_s_changes_come_first_then_each_attachment_written() -> None:
    port = FakeResourcePort()
    port.add(VM)
    port.add(APP, user=(OURS,))
    created = outcome.Change(reason=outcome.CREATED, message="created identity 'ours'")
    ready = outcome.succeeded("ready", {"id": OURS}, changes=(created,))
    result = asyncio.run(
        attachments.reconcile_for_identity(port, identity_outcome=ready, attach_to=[VM, APP], status={})
    )
    assert result.ready
    assert "attached to 2 resource(s)" in result.message
    assert result.changes == (created, outcome.Change(reason=outcome.UPDATED, message="attached to vm1"))


def test_a_failed_attachment_keeps_the_identity_s_changes() -> None:
    port = FakeResourcePort()
    created = outcome.Change(reason=outcome.CREATED, message="created identity 'ours'")
    ready = outcome.succeeded("ready", {"id": OURS}, changes=(created,))
    result = asyncio.run(
        attachments.reconcile_for_identity(port, identity_outcome=ready, attach_to=[VM], status={})
    )
    assert result.reason == reasons.RESOURCE_NOT_FOUND
    assert result.changes == (created,)
    assert "attached to" not in result.message


def test_the_identity_id_comes_from_azure_in_this_pass_never_from_status() -> None:
    port = FakeResourcePort()
    port.add(VM)
    ready_without_id = outcome.succeeded("ready", {})
    result = asyncio.run(
        attachments.reconcile_for_identity(
            port, identity_outcome=ready_without_id, attach_to=[VM], status={"id": OURS}
        )
    )
    assert result == ready_without_id
    assert port.writes == []


def test_a_detach_from_a_resource_no_longer_listed_is_reported_as_a_change() -> None:
    port = FakeResourcePort()
    port.add(VM)
    ready = outcome.succeeded("ready", {"id": OURS})
    asyncio.run(attachments.reconcile_for_identity(port, identity_outcome=ready, attach_to=[VM], status={}))
    previous = {"attachments": [{"resourceId": VM, "state": "Attached"}]}
    writes = len(port.writes)
    result = asyncio.run(
        attachments.reconcile_for_identity(port, identity_outcome=ready, attach_to=[], status=previous)
    )
    assert len(port.writes) == writes + 1, "the identity was detached from the VM"
    assert len(result.changes) == 1
