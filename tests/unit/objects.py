"""Objects as the generic reconcile flow (`reconcilers.flow`) sees them, for the reconciler unit tests.

`object_state` builds a `flow.ObjectState` from plain data. `Life` is one object's life as the controller
runs it: `reconcile` runs `flow.reconcile` and folds the outcome into status as the controller does
(`report.next_status`); a spec change bumps the generation as the API server does, so a hook can tell a
user's change from drift; `reconcile_twice` checks that the second pass writes nothing, changes nothing
and reports what the first did; `remove` runs `flow.remove` for the object being deleted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Callable, Collection, Mapping
from typing import Any

from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.reconcilers import flow
from azure_identity_operator.status import outcome, report

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp()
"""2026-01-01T00:00:00Z, when every test's clock starts."""


class Clock:
    """A clock a test moves by hand: the time status conditions are stamped with, and hooks' `clock`."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def rfc3339(self) -> str:
        return datetime.datetime.fromtimestamp(self.now, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_state(
    kind: str,
    name: str,
    *,
    namespace: str = "team",
    spec: Mapping[str, Any] | None = None,
    status: Mapping[str, Any] | None = None,
    generation: int | None = 1,
    annotations: Mapping[str, str] | None = None,
    deleting_since: float | None = None,
    identity: PrincipalSnapshot | None = None,
    shared_with: Callable[[str], Collection[str]] | None = None,
) -> flow.ObjectState:
    extra = {} if shared_with is None else {"shared_with": shared_with}
    return flow.ObjectState(
        kind=kind,
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        generation=generation,
        spec=dict(spec or {}),
        status=dict(status or {}),
        annotations=dict(annotations or {}),
        deleting_since=deleting_since,
        identity=identity,
        **extra,
    )


def without_changes(result: outcome.Outcome) -> outcome.Outcome:
    return dataclasses.replace(result, changes=())


def reasons_of(changes: Collection[outcome.Change]) -> list[str]:
    return [change.reason for change in changes]


class Life:
    """One object: its spec (a change bumps the generation), the status its reconciles reported, the
    identity it references and the other objects that declare the same Azure thing (`elsewhere`, by
    sharing key)."""

    def __init__(
        self,
        hooks: flow.Hooks[Any],
        spec: Mapping[str, Any],
        *,
        name: str,
        writes: Callable[[], int],
        namespace: str = "team",
        clock: Clock | None = None,
    ) -> None:
        self.hooks = hooks
        self.name = name
        self.namespace = namespace
        self.writes = writes
        """How many writes the fakes have seen so far."""
        self.clock = clock or Clock()
        self._spec: dict[str, Any] = dict(spec)
        self.generation = 1
        self.status: dict[str, Any] = {}
        self.annotations: dict[str, str] = {}
        self.identity: PrincipalSnapshot | None = None
        self.elsewhere: dict[str, list[str]] = {}

    @property
    def spec(self) -> dict[str, Any]:
        return self._spec

    @spec.setter
    def spec(self, value: Mapping[str, Any]) -> None:
        if dict(value) != self._spec:
            self.generation += 1
        self._spec = dict(value)

    def shared_with(self, key: str) -> Collection[str]:
        return self.elsewhere.get(key, [])

    def state(self, **overrides: Any) -> flow.ObjectState:
        base = object_state(
            self.hooks.kind.kind,
            self.name,
            namespace=self.namespace,
            spec=self.spec,
            status=self.status,
            generation=self.generation,
            annotations=self.annotations,
            identity=self.identity,
            shared_with=self.shared_with,
        )
        return dataclasses.replace(base, **overrides)

    def _fold(self, result: outcome.Outcome) -> None:
        self.status = report.next_status(
            self.status, result, generation=self.generation, now=self.clock.rfc3339()
        )

    def reconcile(self, **overrides: Any) -> outcome.Outcome:
        """One pass of `flow.reconcile`; `overrides` replace fields of the `ObjectState` (`identity=...`)."""
        result = asyncio.run(flow.reconcile(self.hooks, self.state(**overrides)))
        self._fold(result)
        return result

    def reconcile_twice(self, **overrides: Any) -> outcome.Outcome:
        """Two passes; the second must write nothing, report no change and otherwise report the same."""
        first = self.reconcile(**overrides)
        before = self.writes()
        second = self.reconcile(**overrides)
        assert self.writes() == before, "the second reconcile must write nothing"
        assert second.changes == (), f"the second reconcile reported changes: {second.changes}"
        assert without_changes(second) == without_changes(first)
        return first

    def remove(self, *, deleting_since: float | None = None, **overrides: Any) -> flow.Removal:
        """One pass of `flow.remove` for the object deleted at `deleting_since` (default: now); a removal
        that is not done reports its result, as the controller does."""
        since = self.clock.now if deleting_since is None else deleting_since
        removal = asyncio.run(flow.remove(self.hooks, self.state(deleting_since=since, **overrides)))
        if not removal.done:
            self._fold(removal.result)
        return removal
