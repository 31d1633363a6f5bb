"""Identities wake the objects that depend on them, at once and without polling.

A federated credential or a role assignment that references an identity cannot progress until the
identity is Ready, and must follow it when its principal changes (recreated behind our back). kopf cannot
enqueue another object's handler, so the wiring is level-based through the API server:

- each identity kind keeps an in-memory index of `PrincipalSnapshot`s (`principal_index_id`);
- each dependant kind keeps an index of which identity each of its objects references, and which
  principal it was last woken for (the `IDENTITY_PRINCIPAL_ANNOTATION` annotation);
- on every event of an identity, `wake` sets that annotation on each dependant whose value
  differs from the identity's usable principal. The annotation change is a change of the dependant's
  metadata, so kopf runs its reconcile handler right away; an unchanged principal writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from azure_identity_operator.api import constants
from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.handlers.kube import KubeWriter

logger = logging.getLogger(__name__)

IdentityKey = tuple[str, str, str]
"""(identity kind, namespace, identity name)."""

ReferenceFn = Callable[[Mapping[str, Any]], tuple[str, str] | None]
"""From a dependant's body: the (identity kind, identity name) it references, or None."""


def principal_index_id(kind: constants.Kind) -> str:
    return f"{kind.plural}_principals"


def register_principal_index(registry: kopf.OperatorRegistry, kind: constants.Kind) -> None:
    """Index every object of an identity kind by (namespace, name) → `PrincipalSnapshot`."""

    @kopf.index(
        constants.GROUP, constants.VERSION, kind.plural, id=principal_index_id(kind), registry=registry
    )
    def index_principals(body: kopf.Body, **_: Any) -> dict[tuple[str, str], PrincipalSnapshot]:
        return {
            (body.metadata.namespace or "", body.metadata.name or ""): PrincipalSnapshot.from_body(
                kind.kind, body
            )
        }


def lookup_principal(
    kind: constants.Kind, namespace: str, name: str, indexes: Mapping[str, Any]
) -> PrincipalSnapshot | None:
    """The snapshot of an identity object from its kind's index (handler kwargs carry the indexes)."""
    index = indexes.get(principal_index_id(kind))
    if index is None:
        return None
    for snapshot in index.get((namespace, name), ()):
        return snapshot  # type: ignore[no-any-return]
    return None


class DependantWiring:
    """The dependant kinds of this operator and the indexes that map identities to their dependants."""

    def __init__(self, registry: kopf.OperatorRegistry) -> None:
        self._registry = registry
        self._dependants: dict[str, constants.Kind] = {}

    def register_identity(self, kind: constants.Kind, kube: KubeWriter) -> None:
        """Index an identity kind's principals, and wake its dependants on every event of its objects."""
        register_principal_index(self._registry, kind)

        @kopf.on.event(constants.GROUP, constants.VERSION, kind.plural, registry=self._registry)
        async def wake_dependants(body: kopf.Body, **kwargs: Any) -> None:
            await self.wake(kube, PrincipalSnapshot.from_body(kind.kind, body), kwargs)

    def register(self, dependant: constants.Kind, reference: ReferenceFn) -> None:
        """Index a dependant kind by the identity its objects reference, so identities can wake them."""
        index_id = f"{dependant.plural}_by_identity"
        self._dependants[index_id] = dependant

        @kopf.index(
            constants.GROUP, constants.VERSION, dependant.plural, id=index_id, registry=self._registry
        )
        def index_by_identity(body: kopf.Body, **_: Any) -> dict[IdentityKey, tuple[str, str | None]] | None:
            referenced = reference(body)
            if referenced is None:
                return None
            identity_kind, identity_name = referenced
            namespace = body.metadata.namespace or ""
            woken_for = body.metadata.annotations.get(constants.IDENTITY_PRINCIPAL_ANNOTATION)
            return {(identity_kind, namespace, identity_name): (body.metadata.name or "", woken_for)}

    async def wake(self, kube: KubeWriter, identity: PrincipalSnapshot, indexes: Mapping[str, Any]) -> int:
        """Point every dependant of `identity` at its current usable principal; return how many were woken."""
        wanted = identity.usable_principal
        woken = 0
        key: IdentityKey = (identity.kind, identity.namespace, identity.name)
        for index_id, dependant in self._dependants.items():
            index = indexes.get(index_id)
            if index is None:
                continue
            for name, woken_for in list(index.get(key, ())):
                if woken_for == wanted:
                    continue
                try:
                    patched = await kube.patch_annotations(
                        plural=dependant.plural,
                        namespace=identity.namespace,
                        name=name,
                        annotations={constants.IDENTITY_PRINCIPAL_ANNOTATION: wanted},
                    )
                except Exception:
                    # One failed write must not keep the other dependants waiting; this one catches up on
                    # the identity's next event or its own drift check.
                    logger.exception("Could not wake %s %s/%s", dependant.kind, identity.namespace, name)
                    continue
                if patched:
                    woken += 1
                    logger.info(
                        "Woke %s %s/%s: identity %s principal is now %r",
                        dependant.kind,
                        identity.namespace,
                        name,
                        identity.name,
                        wanted,
                    )
        return woken
