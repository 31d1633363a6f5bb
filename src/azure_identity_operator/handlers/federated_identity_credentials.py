"""kopf wiring of `FederatedIdentityCredential`: one reconcile for create/update/resume, the drift timer and
the identity's wake-up; cleanup on delete; writes serialized per identity.

Azure refuses concurrent credential writes under one identity (409
`ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity`), so every reconcile and cleanup
holds the lock of the identity it writes under. The 409 stays retryable for writes from outside this
process (another operator replica, a user's `az` command).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kopf

from azure_identity_operator.api import constants
from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.handlers import dependants, runtime
from azure_identity_operator.handlers.context import OperatorContext
from azure_identity_operator.locks import KeyedLocks, arm_id_key
from azure_identity_operator.reconcilers import federated_identity_credentials as reconciler
from azure_identity_operator.status import outcome

KIND = constants.FEDERATED_IDENTITY_CREDENTIAL
IDENTITY_KIND = constants.USER_ASSIGNED_IDENTITY

_identity_locks = KeyedLocks(arm_id_key)


def identity_write_lock(identity_id: str | None) -> asyncio.Lock:
    """The lock serializing credential writes under one identity (a fresh lock when there is none yet)."""
    return _identity_locks.lock(identity_id) if identity_id else asyncio.Lock()


def referenced_identity(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the identity a credential's spec references, for the dependants' index."""
    ref = (body.get("spec") or {}).get("identityRef") or {}
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return (IDENTITY_KIND.kind, name) if isinstance(name, str) and name else None


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    context.dependants.register(KIND, referenced_identity)
    settings = context.settings

    def identity_of(body: kopf.Body, indexes: Mapping[str, Any]) -> PrincipalSnapshot | None:
        referenced = referenced_identity(body)
        if referenced is None:
            return None
        return dependants.lookup_principal(
            IDENTITY_KIND, body.metadata.namespace or "", referenced[1], indexes
        )

    async def reconcile(
        body: kopf.Body, patch: kopf.Patch, logger: Any, retry: int, indexes: Mapping[str, Any]
    ) -> None:
        async def run() -> outcome.Outcome:
            identity = identity_of(body, indexes)
            async with identity_write_lock(identity.resource_id if identity else None):
                return await reconciler.reconcile(
                    context.identities,
                    body.get("spec"),
                    object_name=body.metadata.name or "",
                    namespace=body.metadata.namespace or "",
                    default_issuer=settings.oidc_issuer,
                    identity=identity,
                )

        await runtime.reconcile_and_report(
            body=body,
            patch=patch,
            logger=logger,
            retry=retry,
            run=run,
            action="reconciling the federated credential",
        )

    runtime.register_reconcile(registry, KIND, interval=settings.sync_interval, reconcile=reconcile)

    async def cleanup(body: kopf.Body, logger: Any, indexes: Mapping[str, Any]) -> outcome.Outcome | None:
        identity = identity_of(body, indexes)
        status = body.get("status")
        async with identity_write_lock(reconciler.identity_id_for(identity, status)):
            return await reconciler.cleanup(
                context.identities,
                body.get("spec"),
                object_name=body.metadata.name or "",
                namespace=body.metadata.namespace or "",
                default_issuer=settings.oidc_issuer,
                identity=identity,
                status=status,
            )

    runtime.register_cleanup(registry, KIND, cleanup=cleanup, action="deleting the federated credential")
