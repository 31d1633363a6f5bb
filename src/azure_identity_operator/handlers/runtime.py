"""The one place where reconcile outcomes meet kopf: triggers, locking, status patches, Events and retries.

Every kind registers its reconcile with `register_reconcile` (resume, create, update and the drift timer)
and its cleanup with `register_cleanup`; the reconcile calls `reconcile_and_report` with a zero-argument
coroutine function that runs the kind's reconciler. Work on one object is serialized (kopf runs the drift
timer concurrently with change and delete handlers), unplanned `ArmError`s are mapped through the single
classification table, status is written only when it differs, an Event is posted when Ready's status or
reason changes, and retryable outcomes become kopf retries with exponential backoff (Azure's own
`Retry-After` is honoured exactly when throttled).

It also records each reconcile in the operator's metrics (kind, result, Ready reason, duration) and binds
the object to the logging context, so every line logged during the reconcile, down to the ARM pipeline,
names the object. `track_ready_states` keeps the objects-by-Ready-state gauge from watch events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from azure_identity_operator.api import constants
from azure_identity_operator.arm import errors
from azure_identity_operator.locks import KeyedLocks
from azure_identity_operator.observability import logging as observability_logging
from azure_identity_operator.observability import metrics
from azure_identity_operator.status import outcome, reasons, report
from azure_identity_operator.status.conditions import now_rfc3339

MAX_BACKOFF_SECONDS = 300.0
UNEXPECTED_ERROR_RETRY_SECONDS = 30.0

_object_locks = KeyedLocks()


def object_lock(uid: str) -> asyncio.Lock:
    """The lock that serializes every reconcile and the cleanup of one object within this process."""
    return _object_locks.lock(uid)


def _object_key(body: kopf.Body) -> str:
    """The object's UID (namespace/name before it has one): the key of its lock and of its Ready state."""
    return body.metadata.uid or f"{body.metadata.namespace}/{body.metadata.name}"


def drift_check_due(body: kopf.Body) -> bool:
    """Whether a drift timer should reconcile `body` now.

    No when a reconcile of the object is in progress: the check would repeat it, starting from status
    that kopf patches only after that reconcile returns. Otherwise yes only when the status of the live
    body is current (`observedGeneration` equals `generation`); if not, a change handler is in charge and
    the status it just wrote has not reached this body yet: a reconcile from it would start from outdated
    status (and, for instance, take an identity it has just created for an adopted one).
    """
    if object_lock(_object_key(body)).locked():
        return False
    if body.metadata.get("deletionTimestamp"):
        return False
    status = body.get("status") or {}
    return bool(status.get("observedGeneration") == body.metadata.get("generation"))


def resource_of(kind: constants.Kind) -> tuple[str, str, str]:
    """(group, version, plural): how kopf's decorators name one of the operator's kinds."""
    return constants.GROUP, constants.VERSION, kind.plural


ReconcileHandler = Callable[[kopf.Body, kopf.Patch, Any, int, Mapping[str, Any]], Awaitable[None]]
"""One kind's reconcile: (body, patch, logger, retry count, the other handler kwargs such as indexes)."""

DRIFT_JITTER = 0.1
"""Drift checks run ±10% around the sync interval, so objects created together spread out."""


def register_reconcile(
    registry: kopf.OperatorRegistry, kind: constants.Kind, *, interval: float, reconcile: ReconcileHandler
) -> None:
    """Run `reconcile` on resume, creation and spec change, and as the jittered drift check.

    One function for every trigger: the reconcile is level-based, so it never needs to know why it runs.
    The first drift check of each object starts at a random point of the interval (no burst after a
    restart), and each later one is jittered by ±`DRIFT_JITTER`.
    """
    resource = resource_of(kind)

    @kopf.on.resume(*resource, registry=registry, id="reconcile")
    @kopf.on.create(*resource, registry=registry, id="reconcile")
    @kopf.on.update(*resource, registry=registry, id="reconcile")
    async def on_change(body: kopf.Body, patch: kopf.Patch, logger: Any, retry: int, **kwargs: Any) -> None:
        await reconcile(body, patch, logger, retry, kwargs)

    @kopf.timer(
        *resource,
        registry=registry,
        id="drift",
        interval=interval * (1 - DRIFT_JITTER),
        initial_delay=lambda **_: random.uniform(0.1, 1.0) * interval,
    )
    async def drift(body: kopf.Body, patch: kopf.Patch, logger: Any, **kwargs: Any) -> None:
        stopped = kwargs.get("stopped")
        if stopped is not None and await stopped.wait(random.uniform(0, 2 * DRIFT_JITTER * interval)):
            return
        if not drift_check_due(body):
            return
        await reconcile(body, patch, logger, int(kwargs.get("retry") or 0), kwargs)


def backoff_delay(result: outcome.Outcome, retry: int) -> float:
    assert result.retry_after is not None
    if result.reason == reasons.THROTTLED:
        return result.retry_after
    return float(min(result.retry_after * (2 ** min(retry, 10)), MAX_BACKOFF_SECONDS))


async def reconcile_and_report(
    *,
    body: kopf.Body,
    patch: kopf.Patch,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    retry: int,
    run: Callable[[], Awaitable[outcome.Outcome]],
    action: str,
) -> outcome.Outcome | None:
    """Run one reconcile of `body` and report it; `action` names it in messages ("creating the identity").

    `None` when the object is being deleted: the cleanup handler owns it then. The check runs under the
    object's lock on the body kopf keeps current for timers, so a drift check that waited for a cleanup
    never writes to Azure after it (re-creating what the cleanup just deleted).
    """
    kind = str(body.get("kind") or "")
    with observability_logging.bind_object(kind, body.metadata.namespace, body.metadata.name or ""):
        async with object_lock(_object_key(body)):
            if body.metadata.get("deletionTimestamp"):
                return None
            started = time.monotonic()
            try:
                result = await run()
            except errors.ArmError as error:
                result = errors.outcome_for(error, action=action)
            except Exception as error:
                logger.exception("Unexpected failure while %s", action)
                result = _unexpected(action, error)
            metrics.OPERATOR.record_reconcile(
                kind=kind,
                ready=result.ready,
                retries=result.retry_after is not None,
                reason=result.reason,
                seconds=time.monotonic() - started,
            )
        report_outcome(body=body, patch=patch, logger=logger, result=result)
    if result.retry_after is not None:
        raise kopf.TemporaryError(result.message, delay=backoff_delay(result, retry))
    return result


CleanupHandler = Callable[[kopf.Body, Any, Mapping[str, Any]], Awaitable[outcome.Outcome | None]]
"""One kind's cleanup on deletion: (body, logger, the other handler kwargs such as indexes); `None` when
Azure is clean, else the outcome that says why the object keeps its finalizer (with its retry delay)."""


def register_cleanup(
    registry: kopf.OperatorRegistry,
    kind: constants.Kind,
    *,
    cleanup: CleanupHandler,
    action: str,
    max_blocked_delay: float = MAX_BACKOFF_SECONDS,
) -> None:
    """Run `cleanup` when an object is deleted, under the object's lock, and keep the finalizer until it is
    done.

    kopf signals the drift timer to stop when deletion starts but runs the delete handler without waiting
    for it; the lock makes a drift reconcile in progress finish first, and `reconcile_and_report` skips
    one that was waiting. A blocked cleanup is reported in status (and an Event on transition) and retried
    with backoff, at most `max_blocked_delay` apart while the reason is `DeletionBlocked`.
    """

    @kopf.on.delete(*resource_of(kind), registry=registry, id="cleanup")
    async def on_delete(body: kopf.Body, patch: kopf.Patch, logger: Any, retry: int, **kwargs: Any) -> None:
        with observability_logging.bind_object(kind.kind, body.metadata.namespace, body.metadata.name or ""):
            async with object_lock(_object_key(body)):
                try:
                    blocked = await cleanup(body, logger, kwargs)
                except errors.ArmError as error:
                    blocked = errors.outcome_for(error, action=action)
                except Exception as error:
                    logger.exception("Unexpected failure while %s", action)
                    blocked = _unexpected(action, error)
            if blocked is None:
                return
            report_outcome(body=body, patch=patch, logger=logger, result=blocked)
        if blocked.retry_after is None:
            blocked = dataclasses.replace(blocked, retry_after=UNEXPECTED_ERROR_RETRY_SECONDS)
        delay = backoff_delay(blocked, retry)
        if blocked.reason == reasons.DELETION_BLOCKED:
            delay = min(delay, max_blocked_delay)
        raise kopf.TemporaryError(blocked.message, delay=delay)


def _unexpected(action: str, error: Exception) -> outcome.Outcome:
    return outcome.not_ready(
        reasons.OPERATOR_ERROR,
        f"{action}: unexpected {type(error).__name__}: {error}",
        retry_after=UNEXPECTED_ERROR_RETRY_SECONDS,
    )


def report_outcome(
    *,
    body: kopf.Body,
    patch: kopf.Patch,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    result: outcome.Outcome,
) -> None:
    """Patch status if it changed, and post an Event when Ready's status or reason changed."""
    previous = dict(body.get("status") or {})
    current = report.next_status(
        previous, result, generation=body.metadata.get("generation"), now=now_rfc3339()
    )
    changes = report.status_patch(previous, current)
    if changes:
        patch.status.update(changes)
    if report.ready_transition(previous, current):
        kopf.event(
            body,
            type="Normal" if result.ready else "Warning",
            reason=result.reason,
            message=result.message,
        )
        log = logger.info if result.ready else logger.warning
        log("Ready=%s %s: %s", result.ready, result.reason, result.message)


WATCHED_KINDS = (
    constants.USER_ASSIGNED_IDENTITY,
    constants.FEDERATED_IDENTITY_CREDENTIAL,
    constants.ROLE_ASSIGNMENT,
    constants.SYSTEM_ASSIGNED_IDENTITY,
)


def track_ready_states(
    registry: kopf.OperatorRegistry,
    kinds: tuple[constants.Kind, ...] = WATCHED_KINDS,
    ready_states: metrics.ReadyStates | None = None,
) -> None:
    """Keep the objects-by-Ready-state gauge current from the watch stream of every kind.

    Watch events cover every object the operator can see, including ones not reconciled yet and status
    written by a previous operator process, and say when an object is gone; the gauge follows the cluster
    instead of this process's history.
    """
    states = ready_states if ready_states is not None else metrics.OPERATOR.ready_states
    for kind in kinds:

        @kopf.on.event(constants.GROUP, constants.VERSION, kind.plural, registry=registry)
        def observe_ready_state(
            event: kopf.RawEvent, body: kopf.Body, _kind: str = kind.kind, **_: Any
        ) -> None:
            uid = _object_key(body)
            if event.get("type") == "DELETED":
                states.forget(uid)
            else:
                states.observe(uid=uid, kind=_kind, status=body.get("status"))


def kopf_handler_object() -> observability_logging.ObjectRef | None:
    """The object of the kopf handler running in this task (creation, update, deletion, timer), if any.

    kopf keeps the cause of the handler it invokes in a context variable (its own helpers such as
    `kopf.adopt` read it); not part of kopf's documented API, so any surprise means "no object".
    """
    try:
        from kopf._core.actions.execution import cause_var
    except ImportError:
        return None
    cause = cause_var.get(None)
    body = getattr(cause, "body", None)
    if body is None:
        return None
    metadata = body.get("metadata") or {}
    name = metadata.get("name")
    if not name:
        return None
    return observability_logging.ObjectRef(
        kind=str(body.get("kind") or ""), namespace=metadata.get("namespace"), name=str(name)
    )
