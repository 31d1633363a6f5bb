"""The level-based controller with plain data: watch events in, reconciles of fake kinds, writes recorded.

Covers: a new object gets its finalizer before anything else and one Event for one change, and a second
pass writes nothing; the echo of the operator's own write triggers nothing, a status someone else wrote
is reconciled; a spec change (also one that reverts an earlier one) is reconciled at once, its backoff
reset; a drift check that fails on a transient error keeps the status; dependants are woken only when the
principal Azure reports changes, and wait (deferred, unreported) for an identity not yet observed in
Azure; a deletion removes the finalizer only once Azure is clean; the adopt annotation is acted on at once;
a copied last-handled annotation is ignored.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from azure_identity_operator.api import constants
from azure_identity_operator.handlers.controller import Controller, KindRuntime
from azure_identity_operator.reconcilers import flow, ownership
from azure_identity_operator.status import outcome, reasons

IDENTITY = constants.Kind("Identity", "identities", "id")
DEPENDANT = constants.Kind("Dependant", "dependants", "dep")
INTERVAL = 60.0


class FakeKube:
    """An API server of one kind of write: keeps each object, bumps resourceVersion, records writes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[str] = []
        self.events: list[tuple[str, str, str]] = []
        self.version = 100

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(body["metadata"]["namespace"], body["metadata"]["name"])] = body
        return copy.deepcopy(body)

    async def patch_status(
        self, *, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        self.writes.append(f"status {name}")
        body = self.objects[(namespace, name)]
        merged = {**body.get("status", {}), **status}
        body["status"] = {key: value for key, value in merged.items() if value is not None}
        return self.put(body)

    async def add_finalizer(
        self, *, plural: str, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        self.writes.append(f"finalizer+ {name}")
        stored = self.objects[(namespace, name)]
        stored["metadata"].setdefault("finalizers", []).append(constants.FINALIZER)
        return self.put(stored)

    async def remove_finalizer(
        self, *, plural: str, namespace: str, name: str, body: Mapping[str, Any]
    ) -> None:
        self.writes.append(f"finalizer- {name}")
        self.objects.pop((namespace, name), None)

    async def post_event(self, *, involved: Mapping[str, str], type_: str, reason: str, message: str) -> None:
        self.writes.append(f"event {involved['name']}")
        self.events.append((involved["name"], type_, reason))


@dataclasses.dataclass
class FakeHooks(flow.BaseHooks[Mapping[str, Any]]):
    """A kind whose Azure side is a dict; `ensure` is scripted per test."""

    kind: constants.Kind
    ensure_fn: Callable[[flow.ObjectState], Awaitable[outcome.Outcome]]
    action: str = "reconciling"
    removal: str = "deleting"
    seen: list[flow.ObjectState] = dataclasses.field(default_factory=list)
    remove_result: flow.Removal = dataclasses.field(default_factory=lambda: flow.removed("gone"))

    def parse(self, obj: flow.ObjectState) -> Mapping[str, Any]:
        return obj.spec

    def reference(self, spec: Mapping[str, Any]) -> tuple[str, str] | None:
        return (IDENTITY.kind, spec["identity"]) if "identity" in spec else None

    async def ensure(self, obj: flow.ObjectState, spec: Mapping[str, Any]) -> outcome.Outcome:
        self.seen.append(obj)
        return await self.ensure_fn(obj)

    async def remove(self, obj: flow.ObjectState, spec: Mapping[str, Any]) -> flow.Removal:
        self.seen.append(obj)
        return self.remove_result


def change_spec(stored: dict[str, Any], spec: dict[str, Any]) -> None:
    """A spec change as the API server stores it: the generation goes up."""
    stored["spec"] = spec
    stored["metadata"]["generation"] += 1


def manifest(name: str, spec: dict[str, Any], *, generation: int = 1, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION,
        "metadata": {
            "name": name,
            "namespace": "team",
            "uid": f"uid-{name}",
            "generation": generation,
            **metadata,
        },
        "spec": spec,
    }


class Harness:
    def __init__(self, *runtimes: KindRuntime) -> None:
        self.kube = FakeKube()
        self.controller = Controller(kube=self.kube, kinds=runtimes, sync_interval=INTERVAL)

    def apply(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        stored = self.kube.put(body)
        self.controller.observe(kind, "ADDED", stored)
        return stored

    def edit(self, kind: str, name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Change the stored object as a user (or anyone) would, and deliver the watch event of it."""
        stored = self.kube.objects[("team", name)]
        change(stored)
        written = self.kube.put(stored)
        self.controller.observe(kind, "MODIFIED", written)
        return written

    def ready_reason(self, name: str) -> str:
        return str(self.kube.objects[("team", name)]["status"]["conditions"][0]["reason"])

    def echo(self, kind: str, name: str) -> None:
        """The watch event of the object as now stored (what the API server sends after a write)."""
        self.controller.observe(kind, "MODIFIED", copy.deepcopy(self.kube.objects[("team", name)]))

    async def settle(self, seconds: float = 0.2) -> None:
        await asyncio.sleep(seconds)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def started(harness: Harness) -> None:
    harness.controller.start()
    await asyncio.sleep(0)


def ready(message: str = "ok", **observed: Any) -> outcome.Outcome:
    return outcome.succeeded(message, observed)


def test_a_new_object_gets_its_finalizer_first_and_one_event_and_a_second_pass_writes_nothing() -> None:
    created = outcome.Change(reason=outcome.CREATED, message="created it")
    calls: list[str] = []

    async def ensure(obj: flow.ObjectState) -> outcome.Outcome:
        calls.append("ensure")
        return ready().with_changes(created) if len(calls) == 1 else ready()

    hooks = FakeHooks(IDENTITY, ensure)
    harness = Harness(KindRuntime(hooks))

    async def scenario() -> None:
        await started(harness)
        harness.apply("Identity", manifest("app", {}))
        await harness.settle()
        assert harness.kube.writes == ["finalizer+ app", "status app", "event app"]
        assert harness.kube.events == [("app", "Normal", "Created")]
        harness.echo("Identity", "app")  # the echo of our own write: nothing to do
        await harness.settle()
        assert calls == ["ensure"]
        # A drift check: the same outcome, nothing written.
        harness.controller._schedule(("Identity", "team", "app"), 0, 2)
        await harness.settle()
        assert calls == ["ensure", "ensure"]
        assert harness.kube.writes == ["finalizer+ app", "status app", "event app"]
        await harness.controller.stop()

    run(scenario)


def test_a_status_someone_else_wrote_is_reconciled_and_corrected() -> None:
    async def ensure(obj: flow.ObjectState) -> outcome.Outcome:
        return ready(principalId="real")

    hooks = FakeHooks(IDENTITY, ensure)
    harness = Harness(KindRuntime(hooks))

    async def scenario() -> None:
        await started(harness)
        harness.apply("Identity", manifest("app", {}))
        await harness.settle()
        harness.edit("Identity", "app", lambda stored: stored["status"].update(principalId="forged"))
        await harness.settle()
        assert len(hooks.seen) == 2
        assert harness.kube.objects[("team", "app")]["status"]["principalId"] == "real"
        await harness.controller.stop()

    run(scenario)


def test_a_spec_change_during_a_backoff_is_reconciled_at_once_also_when_it_reverts() -> None:
    async def ensure(obj: flow.ObjectState) -> outcome.Outcome:
        if obj.spec.get("principal") == "unknown":
            return outcome.not_ready(reasons.WAITING_FOR_PRINCIPAL, "not yet", retry_after=60)
        return ready()

    hooks = FakeHooks(IDENTITY, ensure)
    harness = Harness(KindRuntime(hooks))

    async def scenario() -> None:
        await started(harness)
        harness.apply("Identity", manifest("app", {"principal": "good"}))
        await harness.settle()
        harness.echo("Identity", "app")
        harness.edit("Identity", "app", lambda stored: change_spec(stored, {"principal": "unknown"}))
        await harness.settle()
        assert harness.ready_reason("app") == "WaitingForPrincipal"
        # Reverted while the 60 s retry is pending: acted on now.
        harness.edit("Identity", "app", lambda stored: change_spec(stored, {"principal": "good"}))
        await harness.settle()
        status = harness.kube.objects[("team", "app")]["status"]
        assert status["observedGeneration"] == 3
        assert status["conditions"][0]["status"] == "True"
        assert len(hooks.seen) == 3
        await harness.controller.stop()

    run(scenario)


def test_a_transient_failure_of_a_drift_check_keeps_the_status() -> None:
    failing = [False]

    async def ensure(obj: flow.ObjectState) -> outcome.Outcome:
        if failing[0]:
            return outcome.not_ready(reasons.AZURE_ERROR, "503", retry_after=10)
        return ready(principalId="p1")

    hooks = FakeHooks(IDENTITY, ensure)
    dependant = FakeHooks(DEPENDANT, lambda obj: _ready())
    harness = Harness(KindRuntime(hooks, provides_principal=True), KindRuntime(dependant))

    async def scenario() -> None:
        await started(harness)
        harness.apply("Identity", manifest("app", {}))
        await harness.settle()
        harness.echo("Identity", "app")
        harness.apply("Dependant", manifest("dep", {"identity": "app"}))
        await harness.settle()
        assert len(dependant.seen) == 1
        writes = list(harness.kube.writes)
        failing[0] = True
        harness.controller._schedule(("Identity", "team", "app"), 0, 2)
        await harness.settle()
        assert len(hooks.seen) == 2
        assert harness.kube.writes == writes, "a failed observation writes nothing"
        assert len(dependant.seen) == 1, "and wakes no dependant"
        await harness.controller.stop()

    run(scenario)


async def _ready() -> outcome.Outcome:
    return ready()


def test_dependants_follow_the_principal_azure_reports_and_wait_for_an_unobserved_identity() -> None:
    principal = ["p1"]

    async def ensure_identity(obj: flow.ObjectState) -> outcome.Outcome:
        return ready(principalId=principal[0], id="/subscriptions/s/x")

    async def ensure_dependant(obj: flow.ObjectState) -> outcome.Outcome:
        assert obj.identity is not None
        return ready(principalId=obj.identity.principal_id)

    identity = FakeHooks(IDENTITY, ensure_identity)
    dependant = FakeHooks(DEPENDANT, ensure_dependant)
    harness = Harness(KindRuntime(identity, provides_principal=True), KindRuntime(dependant))

    async def scenario() -> None:
        # As after a restart: the identity's status says Ready, but this process has not asked Azure yet.
        body = manifest("app", {}, finalizers=[constants.FINALIZER])
        body["status"] = {
            "observedGeneration": 1,
            "principalId": "forged",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": ""}],
        }
        harness.kube.put(body)
        harness.controller.observe("Identity", None, harness.kube.objects[("team", "app")])
        await started(harness)
        harness.apply("Dependant", manifest("dep", {"identity": "app"}))
        await harness.settle()
        assert len(identity.seen) == 1, "the identity was observed first"
        assert harness.kube.objects[("team", "dep")]["status"]["principalId"] == "p1"
        assert len(dependant.seen) == 1, "deferred without a report, then woken once"

        harness.controller._schedule(("Identity", "team", "app"), 0, 2)  # drift: same principal
        await harness.settle()
        assert len(dependant.seen) == 1, "an unchanged principal wakes nobody"
        principal[0] = "p2"  # re-created behind our back
        harness.controller._schedule(("Identity", "team", "app"), 0, 2)
        await harness.settle()
        assert len(dependant.seen) == 2
        assert harness.kube.objects[("team", "dep")]["status"]["principalId"] == "p2"
        await harness.controller.stop()

    run(scenario)


def test_a_deletion_releases_the_object_only_once_azure_is_clean() -> None:
    hooks = FakeHooks(IDENTITY, lambda obj: _ready())
    hooks.remove_result = flow.blocked(outcome.not_ready(reasons.DELETION_BLOCKED, "refused", retry_after=10))
    harness = Harness(KindRuntime(hooks))

    async def scenario() -> None:
        await started(harness)
        harness.apply("Identity", manifest("app", {}))
        await harness.settle()
        harness.edit(
            "Identity",
            "app",
            lambda stored: stored["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z"),
        )
        await harness.settle()
        assert "finalizer- app" not in harness.kube.writes
        assert harness.ready_reason("app") == "DeletionBlocked"
        # A person sets the force-delete annotation: acted on at once.
        hooks.remove_result = flow.removed("gone")
        harness.edit(
            "Identity",
            "app",
            lambda stored: (
                stored["metadata"]
                .setdefault("annotations", {})
                .update({flow.FORCE_DELETE_ANNOTATION: "true"})
            ),
        )
        await harness.settle()
        assert harness.kube.writes[-1] == "finalizer- app"
        await harness.controller.stop()

    run(scenario)


def test_the_adopt_annotation_is_acted_on_at_once() -> None:
    async def ensure(obj: flow.ObjectState) -> outcome.Outcome:
        if ownership.adopt_requested(obj):
            return outcome.succeeded("taken over")
        return outcome.not_ready(reasons.OWNED_ELSEWHERE, "another cluster's")

    hooks = FakeHooks(IDENTITY, ensure)
    harness = Harness(KindRuntime(hooks))

    async def scenario() -> None:
        await started(harness)
        harness.apply("Identity", manifest("app", {}))
        await harness.settle()
        assert harness.ready_reason("app") == reasons.OWNED_ELSEWHERE
        assert ("app", "Warning", reasons.OWNED_ELSEWHERE) in harness.kube.events
        harness.edit(
            "Identity",
            "app",
            lambda stored: (
                stored["metadata"].setdefault("annotations", {}).update({ownership.ADOPT_ANNOTATION: "true"})
            ),
        )
        await harness.settle()
        assert harness.ready_reason("app") == reasons.SUCCEEDED, "not left to the next drift check"
        assert len(hooks.seen) == 2
        await harness.controller.stop()

    run(scenario)


def test_a_copied_last_handled_annotation_is_ignored() -> None:
    hooks = FakeHooks(IDENTITY, lambda obj: _ready())
    harness = Harness(KindRuntime(hooks))

    async def scenario() -> None:
        await started(harness)
        annotations = {"kopf.identityoperator.dev/last-handled-configuration": '{"spec": {}}'}
        harness.apply("Identity", manifest("app", {}, annotations=annotations))
        await harness.settle()
        assert len(hooks.seen) == 1
        assert harness.kube.objects[("team", "app")]["status"]["conditions"][0]["status"] == "True"
        await harness.controller.stop()

    run(scenario)


@dataclasses.dataclass
class SurveyedHooks(FakeHooks):
    """A kind checked in bulk: `verdicts` says what the next survey concludes per object."""

    verdicts: dict[str, flow.Verdict] = dataclasses.field(default_factory=dict)
    surveyed: list[list[str]] = dataclasses.field(default_factory=list)

    async def survey(self, objects: Any) -> dict[str, flow.Verdict]:
        self.surveyed.append(sorted(flow.object_key(obj) for obj in objects))
        return {key: verdict for key, verdict in self.verdicts.items()}


def test_a_bulk_checked_kind_is_reconciled_only_where_the_survey_found_drift() -> None:
    hooks = SurveyedHooks(IDENTITY, lambda obj: _ready())
    runtime = KindRuntime(hooks, provides_principal=True)
    harness = Harness(runtime)

    async def scenario() -> None:
        await started(harness)
        for name in ("steady", "drifted", "unobservable"):
            harness.apply("Identity", manifest(name, {}))
        await harness.settle()
        assert len(hooks.seen) == 3
        assert harness.controller.pending() == 0
        assert all(t.due is None for t in harness.controller._objects.values()), "no per-object drift timer"
        writes = list(harness.kube.writes)
        hooks.verdicts = {
            "team/steady": flow.Verdict(observed={"principalId": "p"}),
            "team/drifted": flow.Verdict(drifted=True, why="tags differ"),
            "team/unobservable": flow.Verdict(failed=reasons.THROTTLED),
        }
        await harness.controller._sweep(runtime)
        await harness.settle()
        assert hooks.surveyed == [["team/drifted", "team/steady", "team/unobservable"]]
        assert [obj.name for obj in hooks.seen[3:]] == ["drifted"], "only the drifted object is reconciled"
        assert harness.kube.writes == writes, "the drifted one matched after its reconcile: nothing written"
        await harness.controller.stop()

    run(scenario)


def test_a_dependant_applied_with_its_identity_waits_in_silence_until_the_identity_reports() -> None:
    identity = FakeHooks(IDENTITY, lambda obj: _ready_with_principal())
    dependant = FakeHooks(DEPENDANT, lambda obj: _ready_with_principal())
    harness = Harness(KindRuntime(identity, provides_principal=True), KindRuntime(dependant))

    async def scenario() -> None:
        # The dependant arrives first, its identity in the same batch: no status until it can be made.
        harness.apply("Dependant", manifest("dep", {"identity": "app"}))
        harness.apply("Identity", manifest("app", {}))
        await started(harness)
        await harness.settle()
        dependant_writes = [w for w in harness.kube.writes if w.endswith(" dep")]
        assert dependant_writes == ["finalizer+ dep", "status dep", "event dep"]
        assert len(dependant.seen) == 1, "reconciled once, when its identity was Ready"
        await harness.controller.stop()

    run(scenario)


async def _ready_with_principal() -> outcome.Outcome:
    return ready(principalId="p1", id="/subscriptions/s/x").with_changes(
        outcome.Change(reason=outcome.CREATED, message="created")
    )


OWNER = constants.Kind("Owner", "owners", "own")


def owned_by(owner: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": constants.API_VERSION,
            "kind": OWNER.kind,
            "name": owner,
            "uid": f"uid-{owner}",
            "controller": True,
        }
    ]


def test_a_part_wakes_its_owner_when_it_changes_and_the_owner_sees_its_parts() -> None:
    async def part_ready(obj: flow.ObjectState) -> outcome.Outcome:
        return ready()

    async def owner_ensure(obj: flow.ObjectState) -> outcome.Outcome:
        return ready()

    parts = FakeHooks(IDENTITY, part_ready)
    owner = FakeHooks(OWNER, owner_ensure)
    harness = Harness(KindRuntime(parts), KindRuntime(owner))

    async def scenario() -> None:
        await started(harness)
        harness.apply("Owner", manifest("wi", {}))
        await harness.settle()
        assert len(owner.seen) == 1
        assert owner.seen[-1].owned == ()
        # A part appears (the owner created it): the owner is woken, and sees it unreported.
        harness.apply("Identity", manifest("part", {"a": 1}, ownerReferences=owned_by("wi")))
        await harness.settle()
        seen = owner.seen[-1]
        assert [p.name for p in seen.owned] == ["part"]
        assert seen.sibling("Identity", "part") is not None
        assert seen.sibling("Identity", "nothing") is None
        # The part reported Ready (the controller's own status write): the owner was woken again (runs
        # requested while it ran are served once, after it).
        assert owner.seen[-1].owned[0].ready == "True"
        runs = len(owner.seen)
        # An unrelated object changes nothing for the owner; neither does the echo of the part's write.
        harness.apply("Identity", manifest("other", {}))
        harness.echo("Identity", "part")
        await harness.settle()
        assert len(owner.seen) == runs
        # A part deleted: the owner is woken and no longer sees it.
        harness.controller.observe("Identity", "DELETED", harness.kube.objects[("team", "part")])
        await harness.settle()
        assert len(owner.seen) == runs + 1
        assert owner.seen[-1].owned == ()
        await harness.controller.stop()

    run(scenario)


def test_a_settled_part_seen_after_a_restart_does_not_wake_its_owner() -> None:
    async def part_ready(obj: flow.ObjectState) -> outcome.Outcome:
        return ready()

    owner = FakeHooks(OWNER, part_ready)
    harness = Harness(KindRuntime(FakeHooks(IDENTITY, part_ready)), KindRuntime(owner))
    settled_status = {
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "ok"}],
    }

    async def scenario() -> None:
        await started(harness)
        for kind, name, extra in (
            ("Owner", "wi", {}),
            ("Identity", "part", {"ownerReferences": owned_by("wi")}),
        ):
            body = manifest(name, {}, finalizers=[constants.FINALIZER], **extra)
            body["status"] = settled_status
            harness.apply(kind, body)
        await harness.settle()
        assert owner.seen == []  # both reported before: checked at their next drift check, not now
        await harness.controller.stop()

    run(scenario)


@dataclasses.dataclass
class SharingHooks(FakeHooks):
    def sharing_keys(self, obj: flow.ObjectState) -> tuple[str, ...]:
        return (str(obj.spec["account"]),)


def test_an_object_refused_for_a_clash_tries_again_as_soon_as_the_other_goes() -> None:
    async def ensure(obj: flow.ObjectState) -> outcome.Outcome:
        if any(other < f"team/{obj.name}" for other in obj.shared_with(str(obj.spec["account"]))):
            return outcome.not_ready(reasons.CONFLICT, "declared by another")
        return ready()

    hooks = SharingHooks(OWNER, ensure)
    harness = Harness(KindRuntime(hooks))

    async def scenario() -> None:
        await started(harness)
        harness.apply("Owner", manifest("alpha", {"account": "shared"}))
        harness.apply("Owner", manifest("beta", {"account": "shared"}))
        await harness.settle()
        assert harness.ready_reason("beta") == reasons.CONFLICT
        harness.echo("Owner", "beta")
        runs = len(hooks.seen)
        harness.controller.observe("Owner", "DELETED", harness.kube.objects[("team", "alpha")])
        await harness.settle()
        assert len(hooks.seen) == runs + 1  # at once, not at its next drift check (60 s away)
        assert harness.ready_reason("beta") == reasons.SUCCEEDED
        await harness.controller.stop()

    run(scenario)
