"""The Ready condition and the status computed from an outcome: transitions, idempotency, patches, the
kstatus conditions (a slowly retried failure is still Stalled; Paused is neither), and an outcome's
changes."""

from azure_identity_operator.status import conditions, outcome, reasons, report


def test_last_transition_time_changes_only_when_status_flips() -> None:
    first = conditions.set_condition(
        None, type="Ready", status="False", reason="Reconciling", message="a", observed_generation=1, now="T1"
    )
    same_status = conditions.set_condition(
        first, type="Ready", status="False", reason="AzureError", message="b", observed_generation=2, now="T2"
    )
    flipped = conditions.set_condition(
        same_status,
        type="Ready",
        status="True",
        reason="Succeeded",
        message="c",
        observed_generation=2,
        now="T3",
    )
    assert first[0]["lastTransitionTime"] == "T1"
    assert same_status[0]["lastTransitionTime"] == "T1"
    assert same_status[0]["reason"] == "AzureError"
    assert flipped[0]["lastTransitionTime"] == "T3"


def test_other_conditions_keep_their_place() -> None:
    existing = [{"type": "Synced", "status": "True"}, {"type": "Ready", "status": "False"}]
    updated = conditions.set_condition(
        existing,
        type="Ready",
        status="True",
        reason="Succeeded",
        message="",
        observed_generation=None,
        now="T",
    )
    assert [c["type"] for c in updated] == ["Synced", "Ready"]
    assert updated[0] == {"type": "Synced", "status": "True"}


def test_same_outcome_twice_yields_no_patch() -> None:
    result = outcome.succeeded("identity exists", {"principalId": "p", "clientId": "c"})
    first = report.next_status(None, result, generation=3, now="T1")
    second = report.next_status(first, result, generation=3, now="T2")
    assert second == first
    assert report.status_patch(first, second) == {}
    assert not report.ready_transition(first, second)


def test_outcome_fields_set_and_remove_status_keys() -> None:
    previous = {"principalId": "old", "clientId": "c", "observedGeneration": 1}
    result = outcome.not_ready(reasons.AZURE_ERROR, "boom", retry_after=5, observed={"principalId": None})
    current = report.next_status(previous, result, generation=2, now="T")
    assert "principalId" not in current
    assert current["clientId"] == "c"
    assert current["observedGeneration"] == 2
    patch = report.status_patch(previous, current)
    assert patch["principalId"] is None
    assert patch["observedGeneration"] == 2
    assert report.ready_transition(previous, current)


def test_reason_change_is_a_transition_even_without_a_status_flip() -> None:
    waiting = report.next_status(
        None, outcome.not_ready(reasons.WAITING_FOR_IDENTITY, "w"), generation=1, now="T"
    )
    failing = report.next_status(waiting, outcome.not_ready(reasons.AZURE_ERROR, "e"), generation=1, now="T")
    assert report.ready_transition(waiting, failing)


def condition_types(status: dict[str, object]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}  # type: ignore[attr-defined]


def test_kstatus_conditions_follow_the_outcome() -> None:
    retrying = report.next_status(
        None, outcome.not_ready(reasons.AZURE_ERROR, "5xx", retry_after=10), generation=1, now="T1"
    )
    assert condition_types(retrying) == {"Ready": "False", "Reconciling": "True"}
    waiting = report.next_status(
        retrying, outcome.not_ready(reasons.WAITING_FOR_IDENTITY, "w"), generation=1, now="T2"
    )
    assert condition_types(waiting) == {"Ready": "False", "Reconciling": "True"}
    stalled = report.next_status(
        waiting, outcome.not_ready(reasons.INVALID_SPEC, "bad"), generation=2, now="T3"
    )
    assert condition_types(stalled) == {"Ready": "False", "Stalled": "True"}
    ready = report.next_status(stalled, outcome.succeeded("ok"), generation=2, now="T4")
    assert condition_types(ready) == {"Ready": "True"}


def test_kstatus_conditions_keep_their_transition_time_while_they_hold() -> None:
    first = report.next_status(
        None, outcome.not_ready(reasons.AZURE_ERROR, "a", retry_after=1), generation=1, now="T1"
    )
    again = report.next_status(
        first, outcome.not_ready(reasons.THROTTLED, "b", retry_after=1), generation=1, now="T2"
    )
    reconciling = next(c for c in again["conditions"] if c["type"] == "Reconciling")
    assert reconciling["lastTransitionTime"] == "T1"
    assert (
        report.status_patch(
            again,
            report.next_status(
                again, outcome.not_ready(reasons.THROTTLED, "b", retry_after=1), generation=1, now="T3"
            ),
        )
        == {}
    )


def test_a_failure_a_person_must_fix_is_stalled_even_while_it_is_retried_slowly() -> None:
    for reason in (
        reasons.AUTHORIZATION_FAILED,
        reasons.RESOURCE_GROUP_NOT_FOUND,
        reasons.SUBSCRIPTION_NOT_FOUND,
        reasons.AZURE_REJECTED,
    ):
        result = outcome.not_ready(reason, "fix it in Azure", retry_after=60)
        assert result.needs_user_action, reason
        status = report.next_status(None, result, generation=1, now="T")
        assert condition_types(status) == {"Ready": "False", "Stalled": "True"}, reason


def test_progressing_reasons_are_reconciling_even_without_a_retry() -> None:
    for reason in sorted(reasons.PROGRESSING):
        result = outcome.not_ready(reason, "on its way")
        assert not result.needs_user_action, reason
        status = report.next_status(None, result, generation=1, now="T")
        assert condition_types(status) == {"Ready": "False", "Reconciling": "True"}, reason


def test_paused_is_neither_reconciling_nor_stalled() -> None:
    stalled = report.next_status(None, outcome.not_ready(reasons.INVALID_SPEC, "bad"), generation=1, now="T1")
    paused_result = outcome.not_ready(reasons.PAUSED, "skip")
    assert not paused_result.needs_user_action
    paused = report.next_status(stalled, paused_result, generation=1, now="T2")
    assert condition_types(paused) == {"Ready": "False"}
    assert paused["conditions"][0]["reason"] == reasons.PAUSED


def test_changes_are_not_part_of_the_status() -> None:
    created = outcome.Change(reason=outcome.CREATED, message="created it")
    with_change = outcome.succeeded("ok", {"id": "x"}, changes=(created,))
    without = outcome.succeeded("ok", {"id": "x"})
    first = report.next_status(None, with_change, generation=1, now="T")
    assert report.next_status(None, without, generation=1, now="T") == first
    assert report.status_patch(first, report.next_status(first, without, generation=1, now="T2")) == {}


def test_changes_made_before_a_step_come_first() -> None:
    created = outcome.Change(reason=outcome.CREATED, message="created it")
    tagged = outcome.Change(reason=outcome.UPDATED, message="tagged it")
    failed = outcome.not_ready(reasons.AZURE_ERROR, "then failed", changes=(tagged,))
    assert failed.with_changes(created).changes == (created, tagged)
    assert failed.with_changes().changes == (tagged,)
