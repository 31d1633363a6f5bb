"""The generic reconcile flow (`reconcilers.flow`) with a tiny fake kind: pause (no hook runs), an invalid
spec, `deletionPolicy: Orphan`, "already gone", a refused deletion (`DeletionBlocked`, its first retry and
what it tells the user), force-delete, unexpected exceptions, the kind's `explain` before the shared error
table, `Defer`, and the `ObjectState` properties the flow reads."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from azure_identity_operator.api import access_policy as api_policy
from azure_identity_operator.api import constants
from azure_identity_operator.api.common import InvalidSpecError
from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.reconcilers import access, flow
from azure_identity_operator.status import outcome, reasons

from .objects import object_state

WIDGET = constants.Kind("Widget", "widgets", "wd")

AUTHORIZATION_FAILED = ArmError(status=403, code="AuthorizationFailed", message="no delete permission")


@dataclasses.dataclass(frozen=True)
class WidgetSpec:
    deletion_policy: str


class WidgetHooks(flow.BaseHooks[WidgetSpec]):
    """Records which hooks ran; `ensure` and `remove` return or raise what the test sets."""

    kind = WIDGET
    action = "reconciling the widget"
    removal = "deleting the widget"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.ensured: outcome.Outcome | BaseException = outcome.succeeded("the widget is ready")
        self.removed: flow.Removal | BaseException = flow.removed("deleted the widget")
        self.explanation: outcome.Outcome | None = None

    def parse(self, obj: flow.ObjectState) -> WidgetSpec:
        self.calls.append("parse")
        if obj.spec.get("size") == "huge":
            raise InvalidSpecError("spec.size: 'huge' is not a size; write small or large")
        return WidgetSpec(deletion_policy=str(obj.spec.get("deletionPolicy", "Delete")))

    async def ensure(self, obj: flow.ObjectState, spec: WidgetSpec) -> outcome.Outcome:
        self.calls.append("ensure")
        if isinstance(self.ensured, BaseException):
            raise self.ensured
        return self.ensured

    async def remove(self, obj: flow.ObjectState, spec: WidgetSpec) -> flow.Removal:
        self.calls.append("remove")
        if isinstance(self.removed, BaseException):
            raise self.removed
        return self.removed

    def explain(self, error: ArmError, *, action: str, obj: flow.ObjectState) -> outcome.Outcome | None:
        self.calls.append("explain")
        return self.explanation


def widget(
    *, annotations: dict[str, str] | None = None, deleting: bool = False, **spec: str
) -> flow.ObjectState:
    return object_state(
        WIDGET.kind,
        "w1",
        namespace="team",
        spec=spec,
        annotations=annotations,
        deleting_since=1000.0 if deleting else None,
    )


def run_reconcile(hooks: WidgetHooks, obj: flow.ObjectState) -> outcome.Outcome:
    return asyncio.run(flow.reconcile(hooks, obj))


def run_remove(hooks: WidgetHooks, obj: flow.ObjectState) -> flow.Removal:
    return asyncio.run(flow.remove(hooks, obj))


PAUSED = {flow.RECONCILE_POLICY_ANNOTATION: " Skip "}
FORCED = {flow.FORCE_DELETE_ANNOTATION: "true"}


def test_a_paused_object_is_reported_paused_and_no_hook_runs() -> None:
    hooks = WidgetHooks()
    result = run_reconcile(hooks, widget(annotations=PAUSED, size="huge"))
    assert (result.ready, result.reason, result.retry_after) == (False, reasons.PAUSED, None)
    assert not result.needs_user_action
    assert flow.RECONCILE_POLICY_ANNOTATION in result.message
    assert hooks.calls == []


def test_a_paused_object_is_released_on_deletion_without_touching_azure() -> None:
    hooks = WidgetHooks()
    removal = run_remove(hooks, widget(annotations=PAUSED, deleting=True))
    assert removal.done
    assert removal.warning is not None
    assert flow.RECONCILE_POLICY_ANNOTATION in removal.warning
    assert hooks.calls == []


def test_an_invalid_spec_is_invalid_spec_and_nothing_else_runs() -> None:
    hooks = WidgetHooks()
    result = run_reconcile(hooks, widget(size="huge"))
    assert (result.ready, result.reason, result.retry_after) == (False, reasons.INVALID_SPEC, None)
    assert result.needs_user_action
    assert "spec.size" in result.message
    assert hooks.calls == ["parse"]


def test_an_object_whose_spec_was_never_valid_is_released_at_once() -> None:
    hooks = WidgetHooks()
    removal = run_remove(hooks, widget(size="huge", deleting=True))
    assert removal.done
    assert removal.warning is None
    assert removal.result.changes == ()
    assert hooks.calls == ["parse"]


def test_orphan_releases_the_object_without_calling_remove() -> None:
    hooks = WidgetHooks()
    hooks.removed = AssertionError("remove must not run")
    removal = run_remove(hooks, widget(deletionPolicy="Orphan", deleting=True))
    assert removal.done
    assert removal.warning is None
    assert "Orphan" in removal.result.message
    assert hooks.calls == ["parse"]


def test_a_removal_is_passed_on_with_its_changes() -> None:
    hooks = WidgetHooks()
    deleted = outcome.Change(reason=outcome.DELETED, message="deleted widget w1")
    hooks.removed = flow.removed("deleted widget w1", deleted)
    removal = run_remove(hooks, widget(deleting=True))
    assert removal.done
    assert removal.result.reason == reasons.DELETING
    assert removal.result.changes == (deleted,)
    assert hooks.calls == ["parse", "remove"]


@pytest.mark.parametrize(
    "error",
    [
        ArmError(status=404, code="ResourceNotFound", message="gone"),
        ArmError(status=404, code="ResourceGroupNotFound", message="the group is gone"),
        ArmError(status=404, code="SubscriptionNotFound", message="the subscription is gone"),
        ArmError(status=400, code="ParentResourceNotFound", message="its parent is gone"),
    ],
)
def test_remove_raising_an_error_that_says_gone_is_done(error: ArmError) -> None:
    assert error.is_gone
    hooks = WidgetHooks()
    hooks.removed = error
    removal = run_remove(hooks, widget(deleting=True))
    assert removal.done
    assert removal.warning is None
    assert "already gone" in removal.result.message
    assert "explain" not in hooks.calls


def test_a_refused_deletion_is_blocked_retried_soon_and_says_what_releases_it() -> None:
    hooks = WidgetHooks()
    hooks.removed = AUTHORIZATION_FAILED
    removal = run_remove(hooks, widget(deleting=True))
    assert not removal.done
    assert removal.warning is None
    result = removal.result
    assert (result.ready, result.reason) == (False, reasons.DELETION_BLOCKED)
    assert result.retry_after == flow.DELETION_RETRY_SECONDS == 10
    assert result.needs_user_action
    assert "deleting the widget: AuthorizationFailed" in result.message
    assert "no delete permission" in result.message
    assert "spec.deletionPolicy: Orphan" in result.message
    assert f"{flow.FORCE_DELETE_ANNOTATION}=true" in result.message


def test_a_throttled_deletion_keeps_azure_s_delay() -> None:
    hooks = WidgetHooks()
    hooks.removed = ArmError(status=429, code="TooManyRequests", message="slow down", retry_after=17)
    removal = run_remove(hooks, widget(deleting=True))
    assert not removal.done
    assert removal.result.retry_after == 17


def test_a_blocked_removal_without_a_retry_gets_the_first_deletion_retry() -> None:
    hooks = WidgetHooks()
    hooks.removed = flow.blocked(outcome.not_ready(reasons.DELETION_BLOCKED, "still attached"))
    removal = run_remove(hooks, widget(deleting=True))
    assert not removal.done
    assert removal.result.retry_after == flow.DELETION_RETRY_SECONDS
    assert removal.result.message == "still attached"

    hooks.removed = flow.blocked(
        outcome.not_ready(reasons.DELETION_BLOCKED, "still attached", retry_after=15)
    )
    assert run_remove(hooks, widget(deleting=True)).result.retry_after == 15


def test_force_delete_releases_a_refused_deletion_with_a_warning() -> None:
    hooks = WidgetHooks()
    hooks.removed = AUTHORIZATION_FAILED
    removal = run_remove(hooks, widget(annotations=FORCED, deleting=True))
    assert removal.done
    assert removal.result.reason == reasons.DELETION_BLOCKED
    assert removal.warning is not None
    assert "Widget team/w1" in removal.warning
    assert "may remain in Azure" in removal.warning
    assert flow.FORCE_DELETE_ANNOTATION in removal.warning
    assert "no delete permission" in removal.warning


def test_force_delete_releases_a_blocked_removal_the_hook_reported() -> None:
    hooks = WidgetHooks()
    hooks.removed = flow.blocked(outcome.not_ready(reasons.DELETION_BLOCKED, "still attached to vm1"))
    removal = run_remove(hooks, widget(annotations={flow.FORCE_DELETE_ANNOTATION: " TRUE "}, deleting=True))
    assert removal.done
    assert removal.warning is not None
    assert "still attached to vm1" in removal.warning


def test_force_delete_still_removes_what_it_can_and_warns_only_when_azure_refused() -> None:
    hooks = WidgetHooks()
    removal = run_remove(hooks, widget(annotations=FORCED, deleting=True))
    assert removal.done
    assert removal.warning is None
    assert hooks.calls == ["parse", "remove"]


@pytest.mark.parametrize("value", ["false", "yes", ""])
def test_only_true_forces_a_deletion(value: str) -> None:
    hooks = WidgetHooks()
    hooks.removed = AUTHORIZATION_FAILED
    assert not run_remove(
        hooks, widget(annotations={flow.FORCE_DELETE_ANNOTATION: value}, deleting=True)
    ).done


def test_an_unexpected_exception_in_ensure_is_an_operator_error_that_is_retried() -> None:
    hooks = WidgetHooks()
    hooks.ensured = KeyError("principalId")
    result = run_reconcile(hooks, widget())
    assert (result.ready, result.reason) == (False, reasons.OPERATOR_ERROR)
    assert result.retry_after == flow.UNEXPECTED_ERROR_RETRY_SECONDS
    assert not result.needs_user_action
    assert result.message.startswith("reconciling the widget: unexpected KeyError")


def test_an_unexpected_exception_in_remove_keeps_the_object_and_is_retried() -> None:
    hooks = WidgetHooks()
    hooks.removed = RuntimeError("bug")
    removal = run_remove(hooks, widget(deleting=True))
    assert not removal.done
    assert removal.result.reason == reasons.OPERATOR_ERROR
    assert removal.result.retry_after == flow.UNEXPECTED_ERROR_RETRY_SECONDS
    assert "deleting the widget: unexpected RuntimeError: bug" in removal.result.message


def test_an_arm_error_from_ensure_is_read_with_the_shared_table_unless_the_kind_explains_it() -> None:
    hooks = WidgetHooks()
    hooks.ensured = AUTHORIZATION_FAILED
    shared = run_reconcile(hooks, widget())
    assert shared.reason == reasons.AUTHORIZATION_FAILED
    assert shared.retry_after == 60
    assert shared.needs_user_action
    assert shared.message.startswith("reconciling the widget: AuthorizationFailed")
    assert hooks.calls == ["parse", "ensure", "explain"]

    hooks.explanation = outcome.not_ready(reasons.CONFLICT, "the widget's own reading: fix spec.size")
    assert run_reconcile(hooks, widget()) == hooks.explanation


def test_the_kind_s_explanation_also_words_a_refused_deletion() -> None:
    hooks = WidgetHooks()
    hooks.removed = AUTHORIZATION_FAILED
    hooks.explanation = outcome.not_ready(reasons.AUTHORIZATION_FAILED, "grant widgets/delete on the group")
    removal = run_remove(hooks, widget(deleting=True))
    assert not removal.done
    assert removal.result.reason == reasons.DELETION_BLOCKED
    assert removal.result.message.startswith("grant widgets/delete on the group; ")


def test_defer_propagates_and_reports_nothing() -> None:
    hooks = WidgetHooks()
    hooks.ensured = flow.Defer("UserAssignedIdentity", "team", "app")
    with pytest.raises(flow.Defer) as raised:
        run_reconcile(hooks, widget())
    assert raised.value.prerequisite == ("UserAssignedIdentity", "team", "app")
    assert "explain" not in hooks.calls


def test_ensure_s_outcome_is_returned_as_it_is() -> None:
    hooks = WidgetHooks()
    created = outcome.Change(reason=outcome.CREATED, message="created widget w1")
    hooks.ensured = outcome.succeeded("ready", {"id": "w1"}, changes=(created,))
    assert run_reconcile(hooks, widget()) == hooks.ensured


def test_a_transient_failure_during_deletion_is_not_stalled() -> None:
    hooks = WidgetHooks()
    hooks.removed = ArmError(status=503, code="ServiceUnavailable", message="try again")
    removal = run_remove(hooks, widget(deleting=True))
    assert not removal.done
    assert removal.result.retry_after is not None
    assert not removal.result.needs_user_action


def test_object_state_reads_the_annotations_and_generation() -> None:
    fresh = object_state(WIDGET.kind, "w1", generation=2, status={"observedGeneration": 1})
    assert fresh.spec_changed
    assert not dataclasses.replace(fresh, status={"observedGeneration": 2}).spec_changed
    assert not fresh.paused
    assert not fresh.force_delete
    assert list(fresh.shared_with("anything")) == []
    assert object_state(WIDGET.kind, "w1", annotations={flow.RECONCILE_POLICY_ANNOTATION: "SKIP"}).paused
    assert not object_state(WIDGET.kind, "w1", annotations={flow.RECONCILE_POLICY_ANNOTATION: "run"}).paused


class GrantingWidgetHooks(WidgetHooks):
    """A widget that asks for a role grant, as the access policies judge it."""

    def requests(self, obj: flow.ObjectState, spec: WidgetSpec) -> list[access.Request]:
        return [
            access.Grant(
                role_name=str(obj.spec.get("role", "Reader")),
                role_id=None,
                scope="/subscriptions/s/resourceGroups/g",
                principal_id="p",
                own_identity=True,
            )
        ]


def judged(obj: flow.ObjectState, *, remove: bool = False) -> flow.ObjectState:
    denying = access.Policy("no-owners", api_policy.parse_spec({"roles": {"deny": ["Owner"]}}))
    return dataclasses.replace(
        obj,
        policy=lambda requests: access.evaluate([denying], {}, requests, restricted_default=False),
        remove_when_denied=remove,
    )


def test_a_request_a_policy_denies_is_policy_denied_before_any_hook_writes() -> None:
    hooks = GrantingWidgetHooks()
    result = run_reconcile(hooks, judged(widget(role="Owner")))
    assert result.reason == reasons.POLICY_DENIED
    assert result.needs_user_action
    assert "IdentityAccessPolicy no-owners (spec.roles.deny)" in result.message
    assert hooks.calls == ["parse"]  # ensure never ran
    allowed = run_reconcile(hooks, judged(widget(role="Reader")))
    assert allowed.ready


def test_a_denied_object_also_loses_what_it_holds_in_azure_when_so_configured() -> None:
    hooks = GrantingWidgetHooks()
    gone = outcome.Change(reason=outcome.DELETED, message="deleted the widget's grant")
    hooks.removed = flow.removed("deleted", gone)
    result = run_reconcile(hooks, judged(widget(role="Owner"), remove=True))
    assert result.reason == reasons.POLICY_DENIED
    assert hooks.calls == ["parse", "remove"]
    assert result.changes == (gone,)
    # A denial found by ensure itself (once it knows more) is handled alike.
    hooks = WidgetHooks()
    hooks.ensured = flow.policy_denied(access.Denial(policy="p", rule="spec.scopes.allow", message="no"))
    result = run_reconcile(hooks, dataclasses.replace(widget(), remove_when_denied=True))
    assert hooks.calls == ["parse", "ensure", "remove"]
    assert result.reason == reasons.POLICY_DENIED
