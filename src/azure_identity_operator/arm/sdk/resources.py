"""`ResourcePort` on `azure.mgmt.resource.aio.ResourceManagementClient`: generic resources by ID.

The operator manages the identity block of resources of many types, so it does not hard-code an
api-version per type: it asks the resource provider (`providers.get(namespace)`) which api-versions the
type supports, uses the newest stable one, and caches the answer per subscription and namespace. A type
the provider does not list, or a resource provider that accepts an identity block and silently drops it,
means the type cannot carry managed identities (`IDENTITY_NOT_SUPPORTED`).

Bodies are read and written as raw JSON (the `cls` hook of the generated client): the identity block is
all the operator reads, and detaching needs an explicit `null` in the PATCH body.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from azure.mgmt.resource.resources.aio import ResourceManagementClient

from azure_identity_operator.arm import ids
from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.arm.resources import (
    IDENTITY_NOT_SUPPORTED,
    NO_IDENTITY,
    AttachedIdentity,
    IdentityLocks,
    IdentityPatch,
    Resource,
    ResourceIdentity,
    parse_identity_type,
)
from azure_identity_operator.arm.sdk.session import AzureSession, translated_errors

logger = logging.getLogger(__name__)

PROVIDER_CACHE_SECONDS = 3600.0
LRO_POLLING_SECONDS = 2.0
"""Between polls of a long-running identity write (VM PATCHes) when Azure sends no `Retry-After`."""

_GONE_CODES = frozenset({"ResourceNotFound", "NotFound", "ResourceGroupNotFound", "ParentResourceNotFound"})


@dataclasses.dataclass(frozen=True)
class ResourceTypeInfo:
    """What a provider says about one of its resource types."""

    type: str
    api_version: str
    identity_capability: bool
    """The provider lists an identity capability for the type; absence proves nothing."""


_STABLE_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
"""Stable api-versions are bare dates; `-preview`, `-privatepreview`, `-beta` and `-alpha` are not."""


def newest_api_version(versions: list[str]) -> str | None:
    """The newest stable api-version, or the newest pre-release when the type has no stable one."""
    stable = sorted((v for v in versions if _STABLE_API_VERSION.match(v.strip())), reverse=True)
    if stable:
        return stable[0]
    previews = sorted(versions, reverse=True)
    return previews[0] if previews else None


def type_info_from_provider(provider: Mapping[str, Any], type_path: str) -> ResourceTypeInfo | None:
    """The entry of `type_path` (`sites/slots`) in a `providers.get` answer, or None if not listed."""
    namespace = provider.get("namespace") or ""
    for entry in provider.get("resourceTypes") or ():
        if str(entry.get("resourceType", "")).lower() != type_path.lower():
            continue
        version = newest_api_version(list(entry.get("apiVersions") or ()))
        if version is None:
            return None
        capabilities = str(entry.get("capabilities") or "")
        return ResourceTypeInfo(
            type=f"{namespace}/{entry['resourceType']}",
            api_version=version,
            identity_capability="resourceidentity" in capabilities.replace(" ", "").lower(),
        )
    return None


def resource_from_body(body: Mapping[str, Any]) -> Resource:
    identity = body.get("identity") or {}
    system_assigned, _ = parse_identity_type(identity.get("type"))
    attached = tuple(
        AttachedIdentity(
            id=identity_id,
            principal_id=(value or {}).get("principalId"),
            client_id=(value or {}).get("clientId"),
        )
        for identity_id, value in (identity.get("userAssignedIdentities") or {}).items()
    )
    return Resource(
        id=body.get("id", ""),
        name=body.get("name", ""),
        type=body.get("type", ""),
        etag=body.get("etag"),
        identity=ResourceIdentity(
            system_assigned=system_assigned,
            principal_id=identity.get("principalId") if system_assigned else None,
            tenant_id=identity.get("tenantId") if system_assigned else None,
            user_assigned=attached,
            type_spelling=identity.get("type") or NO_IDENTITY,
        ),
    )


def patch_body(patch: IdentityPatch) -> dict[str, Any]:
    identity: dict[str, Any] = {"type": patch.type}
    if patch.user_assigned:
        identity["userAssignedIdentities"] = {
            identity_id: ({} if attach else None) for identity_id, attach in patch.user_assigned.items()
        }
    return {"identity": identity}


def applied(patch: IdentityPatch, after: ResourceIdentity) -> bool:
    """Whether the resource reports what the PATCH asked for (an RP that ignores identity does not)."""
    system_assigned, user_assigned = parse_identity_type(patch.type)
    if after.system_assigned != system_assigned:
        return False
    for identity_id, attach in patch.user_assigned.items():
        if (after.attached(identity_id) is not None) != attach:
            return False
    return user_assigned or not after.user_assigned


def _raw_json(pipeline_response: Any, _deserialized: Any, _headers: Any) -> Any:
    return pipeline_response.http_response.json()


class SdkResourcePort:
    def __init__(self, session: AzureSession) -> None:
        self._session = session
        self._locks = IdentityLocks()
        self._providers: dict[tuple[str, str], tuple[float, Mapping[str, Any]]] = {}
        # One look-up per provider at a time (others wait for its answer); providers never wait on each other.
        self._provider_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._ignored_identity_types: set[str] = set()

    def identity_lock(self, resource_id: str) -> asyncio.Lock:
        return self._locks.lock(resource_id)

    def _client(self, subscription_id: str) -> ResourceManagementClient:
        return self._session.client(ResourceManagementClient, subscription_id)

    async def _provider(self, subscription_id: str, namespace: str) -> Mapping[str, Any]:
        key = (subscription_id.lower(), namespace.lower())
        async with self._provider_locks.setdefault(key, asyncio.Lock()):
            cached = self._providers.get(key)
            if cached is not None and time.monotonic() - cached[0] < PROVIDER_CACHE_SECONDS:
                return cached[1]
            try:
                async with translated_errors():
                    provider = await self._client(subscription_id).providers.get(namespace, cls=_raw_json)
            except ArmError as error:
                if error.status == 404:
                    raise ArmError(
                        status=404,
                        code=IDENTITY_NOT_SUPPORTED,
                        message=f"Azure has no resource provider {namespace!r}: {error.message}",
                        request_id=error.request_id,
                    ) from error
                raise
            self._providers[key] = (time.monotonic(), provider)
            return provider

    async def type_info(self, resource_id: ids.ResourceId) -> ResourceTypeInfo:
        assert resource_id.namespace is not None
        type_path = "/".join(resource_id.types)
        provider = await self._provider(resource_id.subscription_id, resource_id.namespace)
        info = type_info_from_provider(provider, type_path)
        if info is None:
            raise ArmError(
                status=400,
                code=IDENTITY_NOT_SUPPORTED,
                message=f"resource provider {resource_id.namespace} has no resource type {type_path!r}",
            )
        if info.type.lower() in self._ignored_identity_types:
            raise _not_supported(info.type)
        return info

    async def get_resource(self, resource_id: str) -> Resource | None:
        parsed = ids.parse_resource_id(resource_id)
        if parsed.scope_kind != "resource":
            raise ArmError(
                status=400, code="InvalidResourceId", message=f"{resource_id!r} is not a resource ID"
            )
        info = await self.type_info(parsed)
        try:
            async with translated_errors():
                body = await self._client(parsed.subscription_id).resources.get_by_id(
                    str(parsed), api_version=info.api_version, cls=_raw_json
                )
        except ArmError as error:
            if error.status == 404 and error.code in _GONE_CODES:
                return None
            raise
        return resource_from_body(body)

    async def patch_identity(self, resource: Resource, patch: IdentityPatch) -> Resource:
        parsed = ids.parse_resource_id(resource.id)
        info = await self.type_info(parsed)
        headers = {"If-Match": resource.etag} if resource.etag else {}
        async with translated_errors():
            poller = await self._client(parsed.subscription_id).resources.begin_update_by_id(
                str(parsed),
                patch_body(patch),
                api_version=info.api_version,
                headers=headers,
                cls=_raw_json,
                polling_interval=LRO_POLLING_SECONDS,
            )
            body = await poller.result()
        after = resource_from_body(body)
        if not applied(patch, after.identity):
            if (
                not info.identity_capability
                and not after.identity.system_assigned
                and not (after.identity.user_assigned)
            ):
                self._ignored_identity_types.add(info.type.lower())
                raise _not_supported(info.type)
            # Someone else changed the block between our write and its echo; the next pass re-reads it.
            logger.info("Identity of %s changed concurrently; it is re-read on the next pass", resource.id)
        return after


def _not_supported(resource_type: str) -> ArmError:
    return ArmError(
        status=400,
        code=IDENTITY_NOT_SUPPORTED,
        message=f"resource type {resource_type} does not support managed identities "
        "(Azure accepted the identity block and ignored it)",
    )
