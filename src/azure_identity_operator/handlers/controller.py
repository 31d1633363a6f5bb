"""The level-based controller: watch events in, one work queue, the one reconcile flow, status out.

kopf delivers every watch event of every kind (`kopf.on.event`), and does nothing else for our objects:
no change detection, no per-object timers, no annotations of its own, no finalizer (its finalizer setting
names one no object carries). Each event only updates this controller's view of the object and decides
whether it needs work, by *level*, never by diff:

- a generation not yet reported (`status.observedGeneration`), no `Ready` condition yet, a deletion to
  finish, a missing finalizer → reconcile now, whatever annotations say (a copied `last-handled` one
  included), and whatever backoff was pending: a spec change resets it, as controller-runtime does;
- a new value of `identityoperator.dev/reconcile-now`, `reconcile-policy` or `force-delete` → now too;
- a status this process did not write (someone patched `/status`) → reconciled soon, at drift priority,
  so it is corrected from Azure;
- otherwise nothing: its next drift check is already scheduled.

One scheduler holds every object's next due time (a drift check ±10% around the sync interval, or a
retry with exponential backoff), and a bounded set of workers runs `reconcilers.flow` for due objects,
user changes first. Work on one object is never concurrent. A drift check that fails on a transient ARM
error keeps the last known good status (counted in a metric, logged), and never wakes dependants.

Dependants (federated credentials, role assignments) are woken in memory, without Kubernetes writes, when
the principal *Azure* reports for their identity changes; they read that principal from this process's
own observations, never from the identity's status. The controller writes status (only when it changed),
its finalizer (before the first Azure write) and Events (one per change in Azure, one per Ready
transition; Warning only when a person must act) through `KubeWriter`, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import logging
import random
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

import kopf

from azure_identity_operator.api import constants
from azure_identity_operator.api.common import InvalidSpecError
from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.arm import budget
from azure_identity_operator.handlers.kube import ObjectGone, WriteConflict
from azure_identity_operator.handlers.policies import PolicyBook
from azure_identity_operator.observability import logging as observability_logging
from azure_identity_operator.observability import metrics
from azure_identity_operator.reconcilers import flow, ownership
from azure_identity_operator.status import conditions, outcome, reasons, report

logger = logging.getLogger(__name__)

Key = tuple[str, str, str]
"""(kind, namespace, name)."""

USER, RETRY, DRIFT = 0, 1, 2
"""Priorities: a user's change (creation, spec change, deletion, annotation, wake-up) goes first, then
retries, then background drift checks."""

_BUDGET_PRIORITY = {
    USER: budget.Priority.USER,
    RETRY: budget.Priority.RETRY,
    DRIFT: budget.Priority.BACKGROUND,
}

DRIFT_JITTER = 0.1
"""Drift checks run ±10% around the sync interval, so objects created together spread out."""
MAX_BACKOFF_SECONDS = 300.0
MAX_NEEDS_USER_BACKOFF_SECONDS = 600.0
"""Failures a person must fix in Azure are retried up to every 10 minutes, to notice the fix."""
CONFLICT_RETRY_SECONDS = 1.0
NAMESPACE_WAIT_SECONDS = 1.0
"""An object of a namespace whose labels the operator has not seen yet is judged this much later."""
ACCESS_POLICY = constants.ACCESS_POLICY
"""After a write conflict on the object itself: the watch event that caused it brings the new version."""
DEFAULT_WORKERS = 16

_TRIGGER_ANNOTATIONS = (
    flow.RECONCILE_NOW_ANNOTATION,
    flow.RECONCILE_POLICY_ANNOTATION,
    flow.FORCE_DELETE_ANNOTATION,
    ownership.ADOPT_ANNOTATION,
)


class ObjectWriter(Protocol):
    """The controller's Kubernetes writes (`handlers.kube.KubeWriter`; a fake in unit tests)."""

    async def patch_status(
        self, *, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    async def add_finalizer(
        self, *, plural: str, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    async def remove_finalizer(
        self, *, plural: str, namespace: str, name: str, body: Mapping[str, Any]
    ) -> None: ...

    async def post_event(
        self, *, involved: Mapping[str, str], type_: str, reason: str, message: str
    ) -> None: ...

    async def patch_cluster_status(
        self, *, plural: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]: ...


class PolicySource(Protocol):
    """Lists of the access policies and the namespaces, read once before the first reconcile."""

    async def list_policies(self) -> list[dict[str, Any]]: ...

    async def list_namespaces(self) -> list[dict[str, Any]]: ...


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Observed:
    """An identity's IDs as *Azure* reported them to this process (never read from a status)."""

    principal_id: str | None
    client_id: str | None
    tenant_id: str | None
    resource_id: str | None


@dataclasses.dataclass(eq=False, slots=True)
class Tracked:
    """What the controller keeps per object: a slim copy of its latest version and its scheduling."""

    body: dict[str, Any]
    signature: tuple[Any, ...]
    failures: int = 0
    running: bool = False
    rerun: int | None = None
    """Priority of a run requested while one was in progress."""
    due: tuple[float, int, int] | None = None
    """(time, priority, sequence) of the pending heap entry; entries that differ are stale."""
    references: tuple[str, str] | None = None
    owner: Key | None = None
    """The operator's object that owns this one (a WorkloadIdentity's part), if any."""
    sharing_keys: tuple[str, ...] = ()
    queued: asyncio.Task[None] | None = None
    """The write of a `Queued` status, while one is pending."""


@dataclasses.dataclass(frozen=True)
class KindRuntime:
    """One kind as the controller runs it."""

    hooks: flow.Hooks[Any]
    provides_principal: bool = False
    """Whether objects of this kind are identities dependants reference."""
    wakes: str | None = None
    """A Ready reason of other objects that wait for one of this kind (`WaitingForRoleDefinition`): when an
    object of this kind turns Ready, the objects of its namespace showing that reason run again."""


def _resource_version(body: Mapping[str, Any]) -> int | None:
    try:
        return int(str((body.get("metadata") or {}).get("resourceVersion")))
    except ValueError:
        return None


def slim(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an object the controller reads: no managed fields, no foreign annotations (kubectl's
    last-applied copy of the whole object among them), so memory stays small per object."""
    metadata = raw.get("metadata") or {}
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if key.startswith(f"{constants.GROUP}/")
    }
    owner = next(
        (
            {"kind": reference.get("kind"), "name": reference.get("name"), "uid": reference.get("uid")}
            for reference in metadata.get("ownerReferences") or ()
            if reference.get("controller")
            and str(reference.get("apiVersion", "")).startswith(f"{constants.GROUP}/")
        ),
        None,
    )
    return {
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "uid": metadata.get("uid"),
            "generation": metadata.get("generation"),
            "resourceVersion": metadata.get("resourceVersion"),
            "deletionTimestamp": metadata.get("deletionTimestamp"),
            "finalizers": list(metadata.get("finalizers") or ()),
            "annotations": annotations,
            "owner": owner,
        },
        "spec": raw.get("spec") or {},
        "status": raw.get("status") or {},
    }


def _signature(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What, when it changes, makes an object due at once with its backoff reset."""
    metadata = body["metadata"]
    annotations = metadata["annotations"]
    return (
        metadata.get("generation"),
        bool(metadata.get("deletionTimestamp")),
        constants.FINALIZER in metadata["finalizers"],
        *(annotations.get(name) for name in _TRIGGER_ANNOTATIONS),
    )


def _needs_work(body: Mapping[str, Any]) -> bool:
    """Whether an object seen for the first time needs a reconcile now, not at its next drift check."""
    metadata, status = body["metadata"], body["status"]
    has_finalizer = constants.FINALIZER in metadata["finalizers"]
    if metadata.get("deletionTimestamp"):
        return has_finalizer
    return (
        not has_finalizer
        or conditions.find_condition(status.get("conditions"), conditions.READY) is None
        or status.get("observedGeneration") != metadata.get("generation")
        or _ready_reason(status) == reasons.QUEUED  # the operator stopped before it was its turn
    )


def _announced(result: outcome.Outcome, *, warning: bool) -> bool:
    """Whether a Ready transition is worth an Event: a person must act (Warning), or the object became
    Ready without a change already announced, or it was paused. Progress on the way (Queued, waiting for
    an identity applied in the same batch, a retry) shows in status alone: an Event each would cost a
    Kubernetes write per object per step and tell nothing a person acts on."""
    if warning:
        return True
    if result.ready:
        return not result.changes
    return result.reason == reasons.PAUSED


def _settled(body: Mapping[str, Any]) -> bool:
    """Ready for the current generation and not being deleted: what a bulk drift check compares."""
    metadata, status = body["metadata"], body["status"]
    return (
        not metadata.get("deletionTimestamp")
        and constants.FINALIZER in metadata["finalizers"]
        and status.get("observedGeneration") == metadata.get("generation")
        and conditions.is_ready(status)
    )


def _observed_generation(status: Mapping[str, Any]) -> int | None:
    observed = status.get("observedGeneration")
    return observed if isinstance(observed, int) else None


def _ready_reason(status: Mapping[str, Any]) -> str | None:
    ready = conditions.find_condition(status.get("conditions"), conditions.READY)
    return str(ready.get("reason")) if ready is not None else None


def _as_part(key: Key, body: Mapping[str, Any]) -> flow.KubeObject:
    """An object as the owner of it sees it: its spec and where its Ready condition stands."""
    metadata, status = body["metadata"], body["status"]
    ready = conditions.find_condition(status.get("conditions"), conditions.READY) or {}
    return flow.KubeObject(
        kind=key[0],
        name=key[2],
        uid=metadata.get("uid") or "",
        spec=body["spec"],
        owner_uid=(metadata.get("owner") or {}).get("uid"),
        deleting=bool(metadata.get("deletionTimestamp")),
        current=status.get("observedGeneration") == metadata.get("generation"),
        ready=str(ready.get("status") or "Unknown"),
        reason=str(ready.get("reason") or ""),
        message=str(ready.get("message") or ""),
    )


def _deleting_since(body: Mapping[str, Any]) -> float | None:
    stamp = body["metadata"].get("deletionTimestamp")
    return conditions.parse_time(str(stamp)) if stamp else None


class Controller:
    def __init__(
        self,
        *,
        kube: ObjectWriter,
        kinds: Collection[KindRuntime],
        sync_interval: float,
        workers: int = DEFAULT_WORKERS,
        clock: Callable[[], float] = time.monotonic,
        policy_source: PolicySource | None = None,
        restricted_default: bool = False,
        remove_when_denied: bool = False,
    ) -> None:
        self._kube = kube
        self._policy_source = policy_source
        self._book = PolicyBook(restricted_default=restricted_default, loaded=policy_source is None)
        self._remove_when_denied = remove_when_denied
        self._policy_bodies: dict[str, dict[str, Any]] = {}
        """Policy name → what the controller keeps of it: uid, generation, resourceVersion, status."""
        self._kinds = {runtime.hooks.kind.kind: runtime for runtime in kinds}
        self._interval = sync_interval
        self._workers = asyncio.Semaphore(workers) if workers else None
        self._clock = clock
        self._objects: dict[Key, Tracked] = {}
        self._heap: list[tuple[float, int, int, Key]] = []
        self._sequence = itertools.count()
        self._wakeup: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._dependants: dict[Key, set[Key]] = {}
        """Identity key → keys of the objects that reference it."""
        self._sharing: dict[tuple[str, str], set[Key]] = {}
        """(kind, sharing key) → keys of the objects that declare it."""
        self._principals: dict[Key, Observed | None] = {}
        """Identity key → what Azure last reported to this process (`None`: the last attempt failed)."""
        self._parts: dict[Key, set[Key]] = {}
        """Owner key → keys of the objects whose controller owner reference names it."""

    # -- registration -----------------------------------------------------------------------------

    def register(self, registry: kopf.OperatorRegistry) -> None:
        """Feed every watch event of every kind to `observe`; run the scheduler while kopf runs."""
        for runtime in self._kinds.values():
            kind = runtime.hooks.kind

            # Async handlers run on the event loop, as the controller's state wants: kopf would run a sync
            # one in a thread.
            @kopf.on.event(constants.GROUP, constants.VERSION, kind.plural, registry=registry)
            async def on_event(event: kopf.RawEvent, _kind: str = kind.kind, **_: Any) -> None:
                self.observe(_kind, event.get("type"), event.get("object") or {})

        @kopf.on.event(constants.GROUP, constants.VERSION, ACCESS_POLICY.plural, registry=registry)
        async def on_policy(event: kopf.RawEvent, **_: Any) -> None:
            self.observe_policy(event.get("type"), event.get("object") or {})

        @kopf.on.event("", "v1", "namespaces", registry=registry)
        async def on_namespace(event: kopf.RawEvent, **_: Any) -> None:
            self.observe_namespace(event.get("type"), event.get("object") or {})

        @kopf.on.startup(registry=registry)
        async def start_scheduler(**_: Any) -> None:
            # Before any object is reconciled: the policies that govern it, and its namespace's labels.
            await self.load_policies()
            self.start()

        @kopf.on.cleanup(registry=registry)
        async def stop_scheduler(**_: Any) -> None:
            await self.stop()

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._spawn(self._schedule_loop())
        for name in list(self._policy_bodies):
            self._report_policy(name)
        if any(self._surveys(runtime) is not None for runtime in self._kinds.values()):
            self._spawn(self._sweep_loop())

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- access policies ---------------------------------------------------------------------------

    async def load_policies(self) -> None:
        """List every access policy and namespace once, so no object is judged on a partial view."""
        if self._policy_source is None or self._book.loaded:
            return
        for raw in await self._policy_source.list_namespaces():
            self.observe_namespace("ADDED", raw)
        for raw in await self._policy_source.list_policies():
            self.observe_policy("ADDED", raw)
        self._book.loaded = True
        logger.info(
            "Access policies: %d, over %d namespaces; without one: %s",
            len(self._book.policies),
            len(self._book.namespaces),
            "restricted" if self._book.restricted_default else "permissive",
        )

    def observe_policy(self, event_type: str | None, raw: Mapping[str, Any]) -> None:
        metadata = raw.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            return
        if event_type == "DELETED":
            self._policy_bodies.pop(name, None)
            self._recheck(self._book.set_policy(name, None))
            return
        known = self._policy_bodies.get(name)
        if known is not None:
            arriving, seen = _resource_version(raw), _resource_version(known)
            if arriving is not None and seen is not None and arriving <= seen:
                return
            if known["metadata"]["uid"] != metadata.get("uid"):
                known = None
        body = {
            "metadata": {
                "name": name,
                "uid": metadata.get("uid"),
                "generation": metadata.get("generation"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "status": dict(raw.get("status") or {}),
        }
        self._policy_bodies[name] = body
        if known is None or known["metadata"].get("generation") != metadata.get("generation"):
            self._recheck(self._book.set_policy(name, raw.get("spec") or {}))
            self._report_policy(name)
        elif body["status"] != known["status"]:
            self._report_policy(name)  # someone else wrote its status

    def observe_namespace(self, event_type: str | None, raw: Mapping[str, Any]) -> None:
        metadata = raw.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            return
        labels = None if event_type == "DELETED" else dict(metadata.get("labels") or {})
        if labels is not None and self._book.namespaces.get(name) == labels:
            return
        newly = name not in self._book.namespaces
        changed = self._book.set_namespace(name, labels)
        for policy in changed:
            self._report_policy(policy)
        if changed or newly:
            self._recheck({name})

    def _recheck(self, namespaces: Collection[str]) -> None:
        """Objects of these namespaces are judged again: their policies changed. Before the first listing
        nothing was judged yet, so nothing is."""
        if not self._book.loaded or not namespaces:
            return
        for key in [key for key in self._objects if key[1] in namespaces]:
            self._enqueue(key, DRIFT)

    def _report_policy(self, name: str) -> None:
        if self._book.loaded and self._wakeup is not None and name in self._policy_bodies:
            self._spawn(self._write_policy_status(name))

    async def _write_policy_status(self, name: str) -> None:
        body = self._policy_bodies.get(name)
        if body is None:
            return
        fields = self._book.status_of(name)
        problem = fields.pop("problem")
        if problem:
            result = outcome.not_ready(reasons.INVALID_SPEC, f"not in force: {problem}", observed=fields)
        else:
            count = fields["namespaceCount"]
            result = outcome.succeeded(f"in force in {count} namespace{'s' if count != 1 else ''}", fields)
        previous = body["status"]
        current = report.next_status(
            previous, result, generation=body["metadata"].get("generation"), now=conditions.now_rfc3339()
        )
        changes = report.status_patch(previous, current)
        if not changes:
            return
        try:
            written = await self._kube.patch_cluster_status(
                plural=ACCESS_POLICY.plural, name=name, status=changes
            )
        except (ObjectGone, WriteConflict):
            return
        except Exception as error:
            logger.warning("Could not write the status of IdentityAccessPolicy %s: %s", name, error)
            return
        if self._policy_bodies.get(name) is body:
            body["status"] = dict(written.get("status") or {})
            body["metadata"]["resourceVersion"] = (written.get("metadata") or {}).get("resourceVersion")

    # -- watch events -----------------------------------------------------------------------------

    def observe(self, kind: str, event_type: str | None, raw: Mapping[str, Any]) -> None:
        """Take one watch event into the controller's view and schedule the object if it needs work."""
        runtime = self._kinds.get(kind)
        metadata = raw.get("metadata") or {}
        if runtime is None or not metadata.get("name"):
            return
        key: Key = (kind, metadata.get("namespace") or "", metadata["name"])
        if event_type == "DELETED":
            metrics.OPERATOR.ready_states.forget(self._uid_of(key, raw))
            self._forget(key)
            return
        previous = self._objects.get(key)
        # Only parts (objects another of ours owns) wake an owner: nothing to compare for the others.
        maybe_part = bool(metadata.get("ownerReferences")) or (
            previous is not None and previous.owner is not None
        )
        before = _as_part(key, previous.body) if maybe_part and previous is not None else None
        self._take(key, runtime, raw, metadata)
        tracked = self._objects.get(key)
        if tracked is None or tracked.owner is None:
            return
        # A part changed: its owner reports anew. A settled part seen for the first time (a restart)
        # changes nothing its owner reported.
        if (before is None and not _settled(tracked.body)) or (
            before is not None and _as_part(key, tracked.body) != before
        ):
            self._enqueue(tracked.owner, USER)

    def _take(
        self, key: Key, runtime: KindRuntime, raw: Mapping[str, Any], metadata: Mapping[str, Any]
    ) -> None:
        metrics.OPERATOR.ready_states.observe(
            uid=self._uid_of(key, raw), kind=key[0], status=raw.get("status")
        )
        tracked = self._objects.get(key)
        if tracked is not None:
            known, arriving = _resource_version(tracked.body), _resource_version(raw)
            if known is not None and arriving is not None and arriving <= known:
                return  # already seen, or older than what a write of ours returned
            if tracked.body["metadata"].get("uid") != metadata.get("uid"):
                self._forget(key)  # deleted and created again under the same name
                tracked = None
        body = slim(raw)
        if tracked is None:
            tracked = Tracked(body=body, signature=_signature(body))
            self._objects[key] = tracked
            self._index(key, tracked, runtime)
            if _needs_work(body):
                self._enqueue(key, USER)
            elif self._surveys(runtime) is None:
                # Known and reported before (a restart): spread its first check over the interval. Kinds
                # checked in bulk wait for their kind's next sweep instead.
                self._schedule(key, self._clock() + random.uniform(0, self._interval), DRIFT)
            return
        previous_status = tracked.body["status"]
        tracked.body = body
        self._index(key, tracked, runtime)
        signature = _signature(body)
        if signature != tracked.signature:
            tracked.signature = signature
            tracked.failures = 0
            self._enqueue(key, USER)
        elif body["status"] != previous_status:
            # Someone else wrote the status: read Azure again and report what it holds.
            self._enqueue(key, DRIFT)

    @staticmethod
    def _uid_of(key: Key, raw: Mapping[str, Any]) -> str:
        return str((raw.get("metadata") or {}).get("uid") or "/".join(key))

    def _index(self, key: Key, tracked: Tracked, runtime: KindRuntime) -> None:
        owner_reference = tracked.body["metadata"].get("owner")
        owner: Key | None = (
            (str(owner_reference["kind"]), key[1], str(owner_reference["name"])) if owner_reference else None
        )
        if owner != tracked.owner:
            if tracked.owner is not None:
                self._parts.get(tracked.owner, set()).discard(key)
            if owner is not None:
                self._parts.setdefault(owner, set()).add(key)
            tracked.owner = owner
        references = runtime.hooks.reference_for(key[2], tracked.body["spec"])
        if references != tracked.references:
            if tracked.references is not None:
                old: Key = (tracked.references[0], key[1], tracked.references[1])
                self._dependants.get(old, set()).discard(key)
            if references is not None:
                self._dependants.setdefault((references[0], key[1], references[1]), set()).add(key)
            tracked.references = references
        state = self._state(key, tracked, identity=None)
        sharing = tuple(runtime.hooks.sharing_keys(state)) if not state.deleting_since else ()
        if sharing != tracked.sharing_keys:
            self._release(key, [previous for previous in tracked.sharing_keys if previous not in sharing])
            for new in sharing:
                self._sharing.setdefault((key[0], new), set()).add(key)
            tracked.sharing_keys = sharing

    def _release(self, key: Key, sharing_keys: Collection[str]) -> None:
        """The object no longer declares these: objects refused for clashing with it (`Conflict`) try
        again now rather than at their next check."""
        for sharing_key in sharing_keys:
            others = self._sharing.get((key[0], sharing_key), set())
            others.discard(key)
            for other in sorted(others):
                other_tracked = self._objects.get(other)
                if (
                    other_tracked is not None
                    and _ready_reason(other_tracked.body["status"]) == reasons.CONFLICT
                ):
                    self._enqueue(other, USER)

    def _forget(self, key: Key) -> None:
        tracked = self._objects.pop(key, None)
        if tracked is None:
            return
        if tracked.references is not None:
            self._dependants.get((tracked.references[0], key[1], tracked.references[1]), set()).discard(key)
        self._release(key, tracked.sharing_keys)
        if tracked.owner is not None:
            self._parts.get(tracked.owner, set()).discard(key)
            self._enqueue(tracked.owner, USER)
        if self._kinds[key[0]].provides_principal:
            self._principals.pop(key, None)
            self._wake_dependants(key)

    # -- scheduling -------------------------------------------------------------------------------

    def _enqueue(self, key: Key, priority: int) -> None:
        self._schedule(key, self._clock(), priority, earlier_only=True)

    def _schedule(
        self, key: Key, due: float, priority: int, *, earlier_only: bool = False, from_run: bool = False
    ) -> None:
        """Set the object's next run; `earlier_only` keeps an earlier one. A request from outside while
        the object runs (`from_run` unset) is remembered and served right after that run."""
        tracked = self._objects.get(key)
        if tracked is None:
            return
        if tracked.running and not from_run:
            tracked.rerun = priority if tracked.rerun is None else min(tracked.rerun, priority)
            return
        if earlier_only and tracked.due is not None and (tracked.due[0], tracked.due[1]) <= (due, priority):
            return
        entry = (due, priority, next(self._sequence))
        tracked.due = entry
        heapq.heappush(self._heap, (entry[0], entry[1], entry[2], key))
        if self._wakeup is not None:
            self._wakeup.set()

    def pending(self) -> int:
        """Objects with a run due now (for tests and metrics)."""
        now = self._clock()
        return sum(1 for t in self._objects.values() if t.due is not None and t.due[0] <= now)

    async def _schedule_loop(self) -> None:
        assert self._wakeup is not None
        while True:
            self._wakeup.clear()
            now = self._clock()
            due: list[tuple[int, float, int, Key]] = []
            while self._heap and self._heap[0][0] <= now:
                when, priority, sequence, key = heapq.heappop(self._heap)
                tracked = self._objects.get(key)
                if tracked is None or tracked.due != (when, priority, sequence):
                    continue  # superseded or forgotten
                due.append((priority, when, sequence, key))
            # User changes first, then retries, then drift checks; within one, oldest first.
            due.sort()
            for priority, _, _, key in due:
                tracked = self._objects.get(key)
                if tracked is None:
                    continue
                tracked.due = None
                if self._workers is not None:
                    await self._workers.acquire()
                self._spawn(self._run(key, priority))
            timeout = max(0.0, self._heap[0][0] - self._clock()) if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one run ----------------------------------------------------------------------------------

    async def _run(self, key: Key, priority: int = USER) -> None:
        tracked = self._objects.get(key)
        try:
            if tracked is None:
                return
            tracked.running = True
            # Every ARM request of this run waits for budget at this priority, round-robin by namespace.
            budget.priority.set(_BUDGET_PRIORITY[priority])
            budget.fairness_key.set(key[1])
            budget.report_queued.set(
                (lambda seconds: self._queued(key, tracked, seconds)) if priority != DRIFT else None
            )
            with observability_logging.bind_object(*key):
                try:
                    await self._process(key, tracked)
                except asyncio.CancelledError:
                    raise
                except ObjectGone:
                    self._forget(key)
                except WriteConflict:
                    tracked.running = False
                    self._schedule(key, self._clock() + CONFLICT_RETRY_SECONDS, RETRY)
                except Exception:
                    logger.exception("Unexpected failure in the controller; retrying")
                    tracked.running = False
                    self._schedule(key, self._clock() + flow.UNEXPECTED_ERROR_RETRY_SECONDS, RETRY)
        finally:
            if self._workers is not None:
                self._workers.release()
            if tracked is not None and tracked.running:
                tracked.running = False
            if tracked is not None and tracked.rerun is not None and self._objects.get(key) is tracked:
                priority, tracked.rerun = tracked.rerun, None
                self._enqueue(key, priority)

    def _queued(self, key: Key, tracked: Tracked, seconds: float) -> None:
        """The run waits for ARM budget: say so, once, on an object whose change is not reported yet."""
        status = tracked.body["status"]
        current = status.get("observedGeneration") == tracked.body["metadata"].get("generation")
        if (
            tracked.queued is not None
            or _ready_reason(status) == reasons.QUEUED
            or (current and conditions.is_ready(status))
        ):
            return
        result = outcome.not_ready(
            reasons.QUEUED,
            f"waiting about {max(1, round(seconds))}s for Azure's request budget (ARM throttling limits "
            "are shared by the subscription); nothing is wrong, the change is applied in turn",
        )
        tracked.queued = asyncio.get_running_loop().create_task(
            self._report(key, tracked, result, applied=False)
        )

    def _state(self, key: Key, tracked: Tracked, *, identity: PrincipalSnapshot | None) -> flow.ObjectState:
        body = tracked.body
        metadata = body["metadata"]

        def shared_with(sharing_key: str) -> list[str]:
            return sorted(
                f"{other[1]}/{other[2]}"
                for other in self._sharing.get((key[0], sharing_key), ())
                if other != key
                and (other_tracked := self._objects.get(other)) is not None
                and not other_tracked.body["metadata"].get("deletionTimestamp")
            )

        def sibling(kind: str, name: str) -> flow.KubeObject | None:
            other = self._objects.get((kind, key[1], name))
            return _as_part((kind, key[1], name), other.body) if other is not None else None

        uid = metadata.get("uid") or ""
        owned = tuple(
            part
            for part_key in sorted(self._parts.get(key, ()))
            if (part_tracked := self._objects.get(part_key)) is not None
            and (part := _as_part(part_key, part_tracked.body)).owner_uid == uid
        )
        return flow.ObjectState(
            kind=key[0],
            namespace=key[1],
            name=key[2],
            uid=uid,
            generation=metadata.get("generation"),
            spec=body["spec"],
            status=body["status"],
            annotations=metadata["annotations"],
            deleting_since=_deleting_since(body),
            identity=identity,
            shared_with=shared_with,
            sibling=sibling,
            owned=owned,
            policy=lambda requests: self._book.check(key[1], requests),
            remove_when_denied=self._remove_when_denied,
        )

    def _identity_snapshot(self, key: Key, tracked: Tracked) -> PrincipalSnapshot | None:
        """The referenced identity: whether it exists, is Ready and is being deleted from its object; its
        IDs from what Azure reported to this process. Raises `flow.Defer` when its object says Ready but
        this process has not observed it in Azure yet."""
        if tracked.references is None:
            return None
        identity_key: Key = (tracked.references[0], key[1], tracked.references[1])
        identity = self._objects.get(identity_key)
        if identity is None:
            return None
        deleting = bool(identity.body["metadata"].get("deletionTimestamp"))
        ready = conditions.is_ready(identity.body["status"])
        observed = self._principals.get(identity_key)
        if observed is None and ready and not deleting and identity_key not in self._principals:
            raise flow.Defer(*identity_key)
        if not deleting and _ready_reason(identity.body["status"]) is None:
            # Applied together and not reconciled yet: wait for it in silence (its first report wakes
            # this object), rather than report "waiting" for a moment at the cost of a status write.
            raise flow.Defer(*identity_key)
        # A paused identity still has the principal this process last saw in Azure.
        paused = _ready_reason(identity.body["status"]) == reasons.PAUSED
        return PrincipalSnapshot(
            kind=identity_key[0],
            namespace=identity_key[1],
            name=identity_key[2],
            ready=(ready or paused) and observed is not None,
            deleting=deleting,
            principal_id=observed.principal_id if observed else None,
            client_id=observed.client_id if observed else None,
            tenant_id=observed.tenant_id if observed else None,
            resource_id=observed.resource_id if observed else None,
        )

    async def _process(self, key: Key, tracked: Tracked) -> None:
        runtime = self._kinds[key[0]]
        hooks = runtime.hooks
        body = tracked.body
        metadata = body["metadata"]
        deleting = bool(metadata.get("deletionTimestamp"))
        has_finalizer = constants.FINALIZER in metadata["finalizers"]
        if deleting and not has_finalizer:
            return  # nothing of ours to clean up
        if not deleting and not self._book.knows(key[1]):
            # Its namespace's labels decide which policies govern it: judged once its watch event is in.
            self._schedule(key, self._clock() + NAMESPACE_WAIT_SECONDS, RETRY, from_run=True)
            return
        started = time.monotonic()
        try:
            state = self._state(key, tracked, identity=self._identity_snapshot(key, tracked))
        except flow.Defer as defer:
            self._defer(key, tracked, defer)
            return

        if deleting:
            removal = await flow.remove(hooks, state)
            self._record(key[0], removal.result, started)
            if removal.warning:
                logger.warning("Released: %s", removal.warning)
                await self._event(key, tracked, "Warning", reasons.DELETION_BLOCKED, removal.warning)
            if not removal.done:
                await self._report(key, tracked, removal.result)
                self._retry(key, tracked, removal.result)
                return
            for change in removal.result.changes:
                logger.info("%s: %s", change.reason, change.message)
                await self._event(key, tracked, "Normal", change.reason, change.message)
            await self._kube.remove_finalizer(
                plural=hooks.kind.plural, namespace=key[1], name=key[2], body=tracked.body
            )
            logger.info("Deleted: %s", removal.result.message)
            return

        if not has_finalizer:
            # Before the first Azure write, so a deletion always waits for the cleanup.
            self._update(
                key,
                tracked,
                await self._kube.add_finalizer(
                    plural=hooks.kind.plural, namespace=key[1], name=key[2], body=tracked.body
                ),
            )
            state = dataclasses.replace(state, annotations=tracked.body["metadata"]["annotations"])

        try:
            result = await flow.reconcile(hooks, state)
        except flow.Defer as defer:
            self._defer(key, tracked, defer)
            return
        self._record(key[0], result, started)

        was_current = not state.spec_changed and conditions.is_ready(state.status)
        if was_current and result.reason in reasons.TRANSIENT and not result.changes:
            # A failed observation, not a change in Azure: keep the last known good status.
            metrics.OPERATOR.record_failed_drift_check(kind=key[0], reason=result.reason)
            logger.info("Drift check failed, status kept: %s", result.message)
            self._retry(key, tracked, result)
            return

        await self._report(key, tracked, result)
        if runtime.provides_principal and result.reason not in (*reasons.TRANSIENT, reasons.PAUSED):
            self._observe_principal(key, result)
        if result.retry_after is not None:
            self._retry(key, tracked, result)
        else:
            tracked.failures = 0
            if not (result.ready and self._surveys(runtime) is not None):
                self._schedule_drift(key)  # else the kind's sweep checks it

    def _defer(self, key: Key, tracked: Tracked, defer: flow.Defer) -> None:
        prerequisite: Key = defer.prerequisite
        logger.debug("Deferred until %s is observed in Azure", "/".join(prerequisite))
        self._enqueue(prerequisite, USER)
        # Woken when it is; this retry is only the safety net.
        tracked.failures += 1
        delay = self._backoff(flow.UNEXPECTED_ERROR_RETRY_SECONDS, tracked, MAX_BACKOFF_SECONDS)
        self._schedule(key, self._clock() + delay, RETRY, from_run=True)

    def _observe_principal(self, key: Key, result: outcome.Outcome) -> None:
        self._remember_principal(key, result.observed, ready=result.ready)

    def _remember_principal(self, key: Key, observed: Mapping[str, Any], *, ready: bool) -> None:
        """Record what Azure reported for an identity; wake its dependants when that changed."""
        if ready:
            now = Observed(
                principal_id=observed.get("principalId"),
                client_id=observed.get("clientId"),
                tenant_id=observed.get("tenantId"),
                resource_id=observed.get("id") or observed.get("resourceId"),
            )
        else:
            now = None
        known = key in self._principals
        if known and self._principals[key] == now:
            return
        self._principals[key] = now
        # A first observation (after a restart) concerns only dependants still waiting for one: the
        # settled ones are checked in bulk with it, not each with a reconcile of its own.
        self._wake_dependants(key, only_unsettled=not known)

    def _wake_dependants(self, identity_key: Key, *, only_unsettled: bool = False) -> None:
        for dependant in sorted(self._dependants.get(identity_key, ())):
            tracked = self._objects.get(dependant)
            if only_unsettled and tracked is not None and _settled(tracked.body):
                continue
            logger.debug("Waking %s: its identity %s changed", "/".join(dependant), "/".join(identity_key))
            self._enqueue(dependant, USER)

    # -- bulk drift checks ---------------------------------------------------------------------------

    @staticmethod
    def _surveys(runtime: KindRuntime) -> flow.Surveying | None:
        survey = getattr(runtime.hooks, "survey", None)
        return runtime.hooks if callable(survey) else None  # type: ignore[return-value]

    async def _sweep_loop(self) -> None:
        """One drift check of every Ready object per sync interval, in bulk, identities first (their
        observations are what dependants are compared with)."""
        budget.priority.set(budget.Priority.BACKGROUND)
        await asyncio.sleep(random.uniform(0.1, 1.0) * self._interval)
        while True:
            for runtime in sorted(self._kinds.values(), key=lambda r: not r.provides_principal):
                try:
                    await self._sweep(runtime)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception(
                        "Drift check of every %s failed; retried next interval", runtime.hooks.kind.kind
                    )
            await asyncio.sleep(self._interval * random.uniform(1 - DRIFT_JITTER, 1 + DRIFT_JITTER))

    async def _sweep(self, runtime: KindRuntime) -> None:
        surveying = self._surveys(runtime)
        if surveying is None:
            return
        kind = runtime.hooks.kind.kind
        states: dict[str, tuple[Key, flow.ObjectState]] = {}
        for key, tracked in list(self._objects.items()):
            if key[0] != kind or tracked.running or not _settled(tracked.body):
                continue
            try:
                state = self._state(key, tracked, identity=self._identity_snapshot(key, tracked))
            except flow.Defer:
                self._enqueue(key, DRIFT)
                continue
            if state.paused:
                continue
            if self._forbidden(runtime, state):
                # A policy now forbids what it asks (changed while the operator was not running, say).
                self._enqueue(key, DRIFT)
                continue
            states[flow.object_key(state)] = (key, state)
        if not states:
            return
        verdicts = await surveying.survey([state for _, state in states.values()])
        drifted = 0
        for object_key, (key, _) in states.items():
            verdict = verdicts.get(object_key)
            if verdict is None or verdict.drifted:
                drifted += 1
                logger.debug("Drifted (%s): reconciling", verdict.why if verdict else "no verdict")
                self._enqueue(key, DRIFT)
            elif verdict.failed is not None:
                metrics.OPERATOR.record_failed_drift_check(kind=kind, reason=verdict.failed)
            elif verdict.observed is not None and runtime.provides_principal:
                self._remember_principal(key, verdict.observed, ready=True)
        logger.debug("Drift check of %d %s object(s): %d to reconcile", len(states), kind, drifted)

    @staticmethod
    def _forbidden(runtime: KindRuntime, state: flow.ObjectState) -> bool:
        """Whether the policies forbid what the object's spec asks (as far as known without Azure)."""
        try:
            spec = runtime.hooks.parse(state)
        except InvalidSpecError:
            return False  # a full reconcile reports it
        return state.policy(runtime.hooks.requests(state, spec)) is not None

    def _schedule_drift(self, key: Key) -> None:
        spread = random.uniform(1 - DRIFT_JITTER, 1 + DRIFT_JITTER)
        self._schedule(key, self._clock() + self._interval * spread, DRIFT, from_run=True)

    def _retry(self, key: Key, tracked: Tracked, result: outcome.Outcome) -> None:
        base = result.retry_after or flow.UNEXPECTED_ERROR_RETRY_SECONDS
        if result.reason == reasons.THROTTLED:
            delay = base  # Azure said how long, exactly
        else:
            cap = MAX_NEEDS_USER_BACKOFF_SECONDS if result.needs_user_action else MAX_BACKOFF_SECONDS
            delay = self._backoff(base, tracked, cap)
        if not tracked.body["metadata"].get("deletionTimestamp"):
            # Never later than the drift check would have come: it also picks up fixes made in Azure.
            delay = min(delay, self._interval * (1 + DRIFT_JITTER))
        tracked.failures += 1
        self._schedule(key, self._clock() + delay, RETRY, from_run=True)

    @staticmethod
    def _backoff(base: float, tracked: Tracked, cap: float) -> float:
        return float(min(base * (2 ** min(tracked.failures, 10)), cap))

    def _record(self, kind: str, result: outcome.Outcome, started: float) -> None:
        metrics.OPERATOR.record_reconcile(
            kind=kind,
            ready=result.ready,
            needs_user=result.needs_user_action,
            reason=result.reason,
            seconds=time.monotonic() - started,
        )

    # -- writes to Kubernetes ---------------------------------------------------------------------

    def _update(self, key: Key, tracked: Tracked, written: Mapping[str, Any] | None) -> None:
        """Adopt the object a write of ours returned, so the next decision starts from it."""
        if written is None or self._objects.get(key) is not tracked:
            return
        known, arriving = _resource_version(tracked.body), _resource_version(written)
        if known is not None and arriving is not None and arriving < known:
            return
        before = _as_part(key, tracked.body)
        tracked.body = slim(written)
        self._index(key, tracked, self._kinds[key[0]])
        if tracked.owner is not None and _as_part(key, tracked.body) != before:
            self._enqueue(tracked.owner, USER)

    async def _report(
        self, key: Key, tracked: Tracked, result: outcome.Outcome, *, applied: bool = True
    ) -> None:
        """Patch status if it changed; Events for changes in Azure and Ready transitions. An outcome that
        did not apply the current spec (`Queued`) keeps the generation already observed: the change is
        reported as observed only once it is applied."""
        queued, tracked.queued = tracked.queued, None
        if queued is not None and queued is not asyncio.current_task():
            with contextlib.suppress(Exception):
                await queued  # the Queued status goes first, the outcome after it
        hooks = self._kinds[key[0]].hooks
        previous = tracked.body["status"]
        current = report.next_status(
            previous,
            result,
            generation=tracked.body["metadata"].get("generation")
            if applied
            else _observed_generation(previous),
            now=conditions.now_rfc3339(),
        )
        changes = report.status_patch(previous, current)
        if changes:
            self._update(
                key,
                tracked,
                await self._kube.patch_status(
                    plural=hooks.kind.plural, namespace=key[1], name=key[2], status=changes
                ),
            )
        for change in result.changes:
            (logger.warning if change.warning else logger.info)("%s: %s", change.reason, change.message)
            await self._event(
                key, tracked, "Warning" if change.warning else "Normal", change.reason, change.message
            )
        runtime = self._kinds[key[0]]
        if runtime.wakes is not None and result.ready and report.ready_transition(previous, current):
            for other, other_tracked in list(self._objects.items()):
                if other[1] == key[1] and _ready_reason(other_tracked.body["status"]) == runtime.wakes:
                    self._enqueue(other, USER)
        if report.ready_transition(previous, current):
            warning = result.needs_user_action or result.reason == reasons.OPERATOR_ERROR
            log = logger.warning if warning else logger.info
            log("Ready=%s %s: %s", result.ready, result.reason, result.message)
            if _announced(result, warning=warning):
                await self._event(
                    key, tracked, "Warning" if warning else "Normal", result.reason, result.message
                )

    async def _event(self, key: Key, tracked: Tracked, type_: str, reason: str, message: str) -> None:
        metadata = tracked.body["metadata"]
        try:
            await self._kube.post_event(
                involved={
                    "apiVersion": constants.API_VERSION,
                    "kind": key[0],
                    "namespace": key[1],
                    "name": key[2],
                    "uid": metadata.get("uid") or "",
                    "resourceVersion": metadata.get("resourceVersion") or "",
                },
                type_=type_,
                reason=reason,
                message=message,
            )
        except Exception as error:
            # An Event is a courtesy: the status already says it.
            logger.debug("Could not post an Event: %s", error)
