"""The one reconcile flow every kind runs, with the per-kind steps as hooks.

For a live object: pause → parse → ensure → classify errors. For a deleted one: pause → parse → deletion
policy → remove → classify errors → release (a force-delete annotation releases a blocked one). The
decisions every kind shares are made here, once: what `reconcile-policy: skip` means, that an invalid spec
is `InvalidSpec`, that `deletionPolicy: Orphan` leaves Azure alone, what "already gone" is
(`ArmError.is_gone`), how an unplanned `ArmError` becomes a condition (the kind's `explain` first, then
the one table in `arm.errors`), and that an unexpected exception is an `OperatorError` retried, never a
crash.

A kind is a `Hooks` implementation (one module in this package) registered in `handlers.kinds`; one that
can check many objects against one Azure listing also implements `Surveying`, and its drift checks then
cost a list per resource group or subscription instead of a GET per object. Nothing
here imports kopf or the Azure SDK: the handlers layer turns `ObjectState` from a watch event and turns
the returned `Outcome` / `Removal` into status, Events and retries.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from azure_identity_operator.api import constants
from azure_identity_operator.api.common import InvalidSpecError
from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.arm import errors
from azure_identity_operator.reconcilers import access
from azure_identity_operator.status import outcome, reasons

logger = logging.getLogger(__name__)

RECONCILE_POLICY_ANNOTATION = f"{constants.GROUP}/reconcile-policy"
"""`skip` pauses the object: the operator neither reads nor writes Azure for it (also not on deletion)."""
RECONCILE_NOW_ANNOTATION = f"{constants.GROUP}/reconcile-now"
"""Any new value triggers an immediate full reconcile, bypassing a pending backoff."""
FORCE_DELETE_ANNOTATION = f"{constants.GROUP}/force-delete"
"""`"true"` releases a deletion Azure keeps refusing, leaving what remains in Azure as it is."""

UNEXPECTED_ERROR_RETRY_SECONDS = 30.0
DELETION_RETRY_SECONDS = 10.0
"""First retry of a deletion Azure refused; the handlers double it up to their cap."""


def _nobody(_: str) -> Collection[str]:
    return ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class KubeObject:
    """Another object of the operator's kinds in the same namespace, as the controller last saw it."""

    kind: str
    name: str
    uid: str
    spec: Mapping[str, Any]
    owner_uid: str | None
    """The uid of the operator's object that owns it (its controller owner reference), if any."""
    deleting: bool
    current: bool
    """Whether its status reports its current generation."""
    ready: str
    """Its Ready condition's status: "True", "False", or "Unknown" while it has none."""
    reason: str
    message: str


def _no_object(_kind: str, _name: str) -> KubeObject | None:
    return None


def _allow_all(_requests: Sequence[access.Request]) -> access.Denial | None:
    return None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ObjectState:
    """One object as the flow sees it: plain data from its latest watch event, plus what the cluster
    knows about the objects it refers to."""

    kind: str
    namespace: str
    name: str
    uid: str = ""
    generation: int | None = None
    spec: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    status: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    deleting_since: float | None = None
    """Unix time of `metadata.deletionTimestamp`; `None` while the object is live."""
    identity: PrincipalSnapshot | None = None
    """The identity object the spec references, for kinds that reference one (see `Hooks.reference`)."""
    shared_with: Callable[[str], Collection[str]] = _nobody
    """From a key of the kind's `Hooks.sharing_keys`: the other live objects (`namespace/name`) that
    declare the same Azure thing, so removing this object must leave it in place."""
    sibling: Callable[[str, str], KubeObject | None] = _no_object
    """From (kind, name): that object of this namespace, for kinds made of objects of other kinds."""
    owned: tuple[KubeObject, ...] = ()
    """The objects this one owns (their controller owner reference names its uid)."""
    policy: Callable[[Sequence[access.Request]], access.Denial | None] = _allow_all
    """The access policies governing the namespace: the first denial of these requests, if any."""
    remove_when_denied: bool = False
    """Whether what a denied object owns in Azure is removed (`IDENTITY_OPERATOR_POLICY_EXISTING_GRANTS`)."""

    @property
    def spec_changed(self) -> bool:
        """Whether this pass acts on a spec not reported on yet (a user's change, not drift)."""
        return self.status.get("observedGeneration") != self.generation

    @property
    def paused(self) -> bool:
        return str(self.annotations.get(RECONCILE_POLICY_ANNOTATION, "")).strip().lower() == "skip"

    @property
    def force_delete(self) -> bool:
        return str(self.annotations.get(FORCE_DELETE_ANNOTATION, "")).strip().lower() == "true"


SpecT = TypeVar("SpecT")


class Defer(Exception):
    """Raised by a hook that cannot decide yet and must not report anything: the operator has not itself
    observed in Azure the identity this object depends on (after a restart, say). The handlers reconcile
    that identity at once, and this object again once it has."""

    def __init__(self, kind: str, namespace: str, name: str) -> None:
        super().__init__(f"waiting for {kind} {namespace}/{name} to be observed in Azure")
        self.prerequisite = (kind, namespace, name)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Removal:
    """What a deletion attempt concluded: `done` releases the object (its finalizer goes); otherwise
    `result` is reported and the attempt retried."""

    done: bool
    result: outcome.Outcome
    warning: str | None = None
    """Set when the object is released although Azure may still hold something (a Warning Event)."""


def removed(message: str, *changes: outcome.Change) -> Removal:
    """Azure holds nothing more of the object's: release it."""
    return Removal(done=True, result=outcome.not_ready(reasons.DELETING, message).with_changes(*changes))


def blocked(result: outcome.Outcome) -> Removal:
    """Azure still holds something of the object's: report `result` and try again."""
    return Removal(done=False, result=result)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Verdict:
    """What a bulk drift check concluded about one object that was Ready."""

    drifted: bool = False
    """Azure (or the object's status) differs from the spec: reconcile the object in full."""
    failed: str | None = None
    """Azure could not be observed (the reason, e.g. `Throttled`): keep the last known good status."""
    observed: Mapping[str, Any] | None = None
    """An identity's IDs as the listing showed them (`id`, `principalId`, `clientId`, `tenantId`)."""
    why: str = ""


def unlisted(error: errors.ArmError) -> Verdict:
    """The verdict for objects whose Azure listing failed: a transient failure is a failed check (status
    kept); anything else is left to a full reconcile of each, which reports it."""
    if error.is_transient:
        return Verdict(failed=errors.outcome_for(error, action="listing").reason)
    return Verdict(drifted=True, why=str(error))


def object_key(obj: ObjectState) -> str:
    """How `Surveying.survey` keys its verdicts."""
    return f"{obj.namespace}/{obj.name}"


class Surveying(Protocol):
    """A kind whose drift checks read Azure in bulk (a list per resource group or subscription, not a GET
    per object). The controller calls it once per sync interval with every Ready object of the kind and
    reconciles in full only those whose verdict says they drifted."""

    async def survey(self, objects: Sequence[ObjectState]) -> Mapping[str, Verdict]:
        """A verdict per object (by `object_key`); an object without one is reconciled in full."""
        ...


class Hooks(Protocol[SpecT]):
    """One kind's steps. `BaseHooks` gives the defaults; a kind overrides what differs."""

    kind: constants.Kind
    action: str
    """What a reconcile does, for messages: "reconciling the identity"."""
    removal: str
    """What a cleanup does: "deleting the identity"."""

    def parse(self, obj: ObjectState) -> SpecT:
        """The spec with defaults filled in and checked; `InvalidSpecError` says what to fix."""
        ...

    def deletion_policy(self, spec: SpecT) -> str: ...

    def reference(self, spec: Mapping[str, Any]) -> tuple[str, str] | None:
        """(identity kind, name) the raw spec references, for kinds that depend on an identity."""
        ...

    def reference_for(self, name: str, spec: Mapping[str, Any]) -> tuple[str, str] | None:
        """The identity the object `name` depends on: `reference(spec)`, unless the kind's own parts
        include it."""
        ...

    def sharing_keys(self, obj: ObjectState) -> Collection[str]:
        """Keys of the Azure things this object declares that another object may declare too."""
        ...

    def requests(self, obj: ObjectState, spec: SpecT) -> Sequence[access.Request]:
        """What the object asks of Azure, as the access policies judge it, known from the spec alone
        (`ensure` checks what it learns later through `obj.policy`, before any write)."""
        ...

    async def ensure(self, obj: ObjectState, spec: SpecT) -> outcome.Outcome:
        """Observe Azure, write what differs from `spec`, report. Running it twice writes nothing."""
        ...

    async def remove(self, obj: ObjectState, spec: SpecT) -> Removal:
        """Remove what the object owns in Azure (`removed(...)`), or say why not yet (`blocked(...)`)."""
        ...

    def explain(self, error: errors.ArmError, *, action: str, obj: ObjectState) -> outcome.Outcome | None:
        """A kind's own reading of an error (a hint naming its fields), or `None` for the shared table."""
        ...


class BaseHooks(Generic[SpecT]):
    """Defaults: `spec.deletionPolicy`, no reference, nothing shared, the shared error table."""

    def deletion_policy(self, spec: SpecT) -> str:
        return str(getattr(spec, "deletion_policy", "Delete"))

    def reference(self, spec: Mapping[str, Any]) -> tuple[str, str] | None:
        return None

    def reference_for(self, name: str, spec: Mapping[str, Any]) -> tuple[str, str] | None:
        return self.reference(spec)

    def sharing_keys(self, obj: ObjectState) -> Collection[str]:
        return ()

    def requests(self, obj: ObjectState, spec: SpecT) -> Sequence[access.Request]:
        return ()

    def explain(self, error: errors.ArmError, *, action: str, obj: ObjectState) -> outcome.Outcome | None:
        return None


def classify(hooks: Hooks[Any], error: errors.ArmError, *, action: str, obj: ObjectState) -> outcome.Outcome:
    """The kind's explanation of `error` if it has one, else the shared table's: a chain of two."""
    return hooks.explain(error, action=action, obj=obj) or errors.outcome_for(error, action=action)


def _unexpected(action: str, error: Exception) -> outcome.Outcome:
    return outcome.not_ready(
        reasons.OPERATOR_ERROR,
        f"{action}: unexpected {type(error).__name__}: {error}",
        retry_after=UNEXPECTED_ERROR_RETRY_SECONDS,
    )


PAUSED_MESSAGE = (
    f"{RECONCILE_POLICY_ANNOTATION} is 'skip': the operator neither reads nor writes Azure for this object "
    "until the annotation is removed"
)


async def reconcile(hooks: Hooks[Any], obj: ObjectState) -> outcome.Outcome:
    """Make Azure match a live object's spec; the outcome says what to report and whether to retry.

    Raises only `Defer`.
    """
    if obj.paused:
        return outcome.not_ready(reasons.PAUSED, PAUSED_MESSAGE)
    try:
        spec = hooks.parse(obj)
    except InvalidSpecError as error:
        return outcome.not_ready(reasons.INVALID_SPEC, str(error))
    denial = obj.policy(hooks.requests(obj, spec))
    if denial is not None:
        result = policy_denied(denial)
    else:
        try:
            result = await hooks.ensure(obj, spec)
        except Defer:
            raise
        except errors.ArmError as error:
            return classify(hooks, error, action=hooks.action, obj=obj)
        except Exception as error:
            logger.exception("Unexpected failure while %s", hooks.action)
            return _unexpected(hooks.action, error)
    if result.reason == reasons.POLICY_DENIED and obj.remove_when_denied:
        return await _remove_denied(hooks, obj, spec, result)
    return result


def policy_denied(denial: access.Denial) -> outcome.Outcome:
    """The outcome of a request a policy forbids: nothing was written to Azure for it."""
    return outcome.not_ready(
        reasons.POLICY_DENIED,
        f"{denial.describe()}; nothing is written to Azure for it (change the spec, or ask for the policy "
        "to allow it)",
    )


async def _remove_denied(
    hooks: Hooks[Any], obj: ObjectState, spec: Any, denied: outcome.Outcome
) -> outcome.Outcome:
    """With `IDENTITY_OPERATOR_POLICY_EXISTING_GRANTS=remove`: what the object owns in Azure goes too, as on
    deletion (only what Azure confirms is this object's)."""
    try:
        removal = await hooks.remove(obj, spec)
    except errors.ArmError as error:
        if error.is_gone:
            return denied
        return dataclasses.replace(
            denied,
            message=f"{denied.message}; removing what it holds in Azure failed: {error}",
            retry_after=DELETION_RETRY_SECONDS,
        )
    if not removal.done:
        return dataclasses.replace(
            denied,
            message=f"{denied.message}; removing what it holds in Azure: {removal.result.message}",
            retry_after=removal.result.retry_after or DELETION_RETRY_SECONDS,
            changes=removal.result.changes,
        )
    return dataclasses.replace(denied, changes=removal.result.changes)


async def remove(hooks: Hooks[Any], obj: ObjectState) -> Removal:
    """Clean Azure up for a deleted object, honouring pause, `deletionPolicy` and force-delete."""
    if obj.paused:
        return Removal(
            done=True,
            result=outcome.not_ready(reasons.DELETING, "paused: Azure is left as it is"),
            warning=f"released without touching Azure: {PAUSED_MESSAGE}",
        )
    try:
        spec = hooks.parse(obj)
    except InvalidSpecError:
        # Never valid, so nothing was ever written to Azure for it.
        return Removal(done=True, result=outcome.not_ready(reasons.DELETING, "the spec was never valid"))
    if hooks.deletion_policy(spec) == "Orphan":
        return Removal(
            done=True, result=outcome.not_ready(reasons.DELETING, "deletionPolicy is Orphan: Azure keeps it")
        )
    try:
        removal = await hooks.remove(obj, spec)
    except errors.ArmError as error:
        if error.is_gone:
            return removed(f"{hooks.removal}: already gone in Azure")
        failed = classify(hooks, error, action=hooks.removal, obj=obj)
        # A transient failure is progress (retried, Reconciling); a refusal keeps the object (Stalled).
        removal = blocked(failed if error.is_transient else deletion_blocked(failed))
    except Exception as error:
        logger.exception("Unexpected failure while %s", hooks.removal)
        removal = blocked(_unexpected(hooks.removal, error))
    if removal.done:
        return removal
    if obj.force_delete:
        return Removal(
            done=True,
            result=removal.result,
            warning=f"what {obj.kind} {obj.namespace}/{obj.name} owns may remain in Azure: released by "
            f"{FORCE_DELETE_ANNOTATION} while Azure refused ({removal.result.message})",
        )
    if removal.result.retry_after is None:
        return blocked(dataclasses.replace(removal.result, retry_after=DELETION_RETRY_SECONDS))
    return removal


def deletion_blocked(failed: outcome.Outcome) -> outcome.Outcome:
    """A refused deletion as `DeletionBlocked`, saying what keeps the object and what releases it."""
    return outcome.not_ready(
        reasons.DELETION_BLOCKED,
        f"{failed.message}; the object keeps its finalizer until Azure confirms the deletion (or set "
        f"spec.deletionPolicy: Orphan, or annotate {FORCE_DELETE_ANNOTATION}=true, to leave it in Azure)",
        # One first retry for every refused deletion (throttling keeps Azure's own delay): a deletion
        # waits on a person only while the object stays in the cluster, so check again soon.
        retry_after=failed.retry_after if failed.reason == reasons.THROTTLED else DELETION_RETRY_SECONDS,
    )
