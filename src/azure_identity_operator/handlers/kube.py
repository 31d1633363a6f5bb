"""Every Kubernetes write of the operator: status, its finalizer, Events, exported ConfigMaps.

kopf only watches; the controller (`handlers.controller`) writes through `handlers.kube_api.KubeClient`, a
small asyncio client logged in as the operator's kopf is. A write that finds the object gone raises
`ObjectGone`; one that lost a race with another writer raises `WriteConflict`; any other refusal of a
ConfigMap export is a `KubernetesError` the reconcilers understand; other failures are
`kube_api.KubeApiError`s.
"""

from __future__ import annotations

import datetime
import os
import secrets
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import kopf

from azure_identity_operator.api import constants
from azure_identity_operator.handlers import kube_api
from azure_identity_operator.handlers.kube_api import JSON_PATCH, MERGE_PATCH, KubeApiError, KubeClient
from azure_identity_operator.reconcilers.kube_port import KubernetesError

EVENT_SOURCE = "azure-identity-operator"
"""How Events name their source (`kubectl describe` shows it under From)."""
REPORTING_CONTROLLER = f"{constants.GROUP}/{EVENT_SOURCE}"
MAX_EVENT_MESSAGE = 1024

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "KubeApiError",
    "KubeWriter",
    "KubernetesError",
    "ObjectGone",
    "WriteConflict",
    "describe_failure",
]


class ObjectGone(Exception):
    """The object was deleted while the operator worked on it."""


class WriteConflict(Exception):
    """The object changed between the operator's read and its write; its next watch event brings the news."""


def describe_failure(error: Exception) -> str:
    """One line for a status message: the API server's status and reason, not a dump of its answer."""
    if isinstance(error, KubeApiError) and error.status is not None:
        return f"the Kubernetes API answered {error.status} {error.reason}"
    return f"{type(error).__name__}: {error}"


def _path(*segments: str) -> str:
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


class KubeWriter:
    def __init__(self, client: KubeClient) -> None:
        self._client = client

    @classmethod
    def from_environment(cls, settings: kopf.OperatorSettings | None = None) -> KubeWriter:
        """Logged in as the operator's kopf: in a pod, the service account; elsewhere, the kubeconfig."""
        return cls(KubeClient(lambda: kube_api.login(settings)))

    async def patch_status(
        self, *, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status subresource with the changed top-level fields; the object as stored."""
        return await self._patch(
            plural, namespace, name, {"status": dict(status)}, content_type=MERGE_PATCH, subresource="status"
        )

    async def add_finalizer(
        self, *, plural: str, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Add the operator's finalizer to the object as `body` last showed it (a JSON patch that tests the
        resourceVersion, so no other writer's finalizer is lost)."""
        metadata = body["metadata"]
        operations: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": metadata["resourceVersion"]}
        ]
        if metadata.get("finalizers"):
            operations.append({"op": "add", "path": "/metadata/finalizers/-", "value": constants.FINALIZER})
        else:
            operations.append({"op": "add", "path": "/metadata/finalizers", "value": [constants.FINALIZER]})
        return await self._patch(plural, namespace, name, operations, content_type=JSON_PATCH)

    async def remove_finalizer(
        self, *, plural: str, namespace: str, name: str, body: Mapping[str, Any]
    ) -> None:
        """Remove the operator's finalizer (tested in place, so a concurrent change of the list conflicts
        instead of removing another's); gone already counts as done."""
        finalizers = list(body["metadata"].get("finalizers") or ())
        if constants.FINALIZER not in finalizers:
            return
        index = finalizers.index(constants.FINALIZER)
        operations = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": constants.FINALIZER},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        try:
            await self._patch(plural, namespace, name, operations, content_type=JSON_PATCH)
        except ObjectGone:
            return

    async def _patch(
        self,
        plural: str,
        namespace: str,
        name: str,
        body: Any,
        *,
        content_type: str,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """Patch one of the operator's objects (or its subresource); the object as stored."""
        segments = ["apis", constants.GROUP, constants.VERSION, "namespaces", namespace, plural, name]
        path = _path(*segments, *([subresource] if subresource else []))
        try:
            result = await self._client.request("PATCH", path, body=body, content_type=content_type)
        except KubeApiError as error:
            if error.status == 404:
                raise ObjectGone(f"{plural} {namespace}/{name}") from None
            if error.status in (409, 422):
                raise WriteConflict(f"{plural} {namespace}/{name}: {error.status} {error.reason}") from None
            raise
        return dict(result)

    async def post_event(self, *, involved: Mapping[str, str], type_: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about one of the operator's objects, from the operator by name."""
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        now_micro = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        namespace = involved["namespace"]
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                # As kubectl and client-go name them: the object's name and a unique suffix.
                "name": f"{involved['name']}.{secrets.token_hex(8)}",
                "namespace": namespace,
            },
            "involvedObject": dict(involved),
            "type": type_,
            "reason": reason,
            "message": message[:MAX_EVENT_MESSAGE],
            "source": {"component": EVENT_SOURCE},
            "reportingComponent": REPORTING_CONTROLLER,
            "reportingInstance": _INSTANCE,
            "action": "Reconcile",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": now_micro,
            "count": 1,
        }
        await self._client.request("POST", _path("api", "v1", "namespaces", namespace, "events"), body=body)

    async def read_config_map(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        """The ConfigMap as stored, `None` if there is none."""
        try:
            found = await self._client.request("GET", _config_map_path(namespace, name))
        except KubeApiError as error:
            if error.status == 404:
                return None
            raise
        return dict(found)

    async def export_config_map(
        self, *, namespace: str, name: str, data: Mapping[str, str], owner: Mapping[str, str] | None
    ) -> bool:
        """Make ConfigMap `name` carry `data` (other keys kept); `True` if anything was written.

        A ConfigMap this call creates gets `owner` (apiVersion, kind, name, uid) as its owner reference, so
        Kubernetes removes it with the owner; an existing one keeps its owners and only gains the keys.
        Any refusal is a `KubernetesError` with the API server's status and message (`None` and what went
        wrong when no answer arrived).
        """
        try:
            return await self._export_config_map(namespace=namespace, name=name, data=data, owner=owner)
        except KubeApiError as error:
            if error.status is None:
                raise KubernetesError(None, str(error)) from None
            raise KubernetesError(error.status, error.message) from None

    async def _export_config_map(
        self, *, namespace: str, name: str, data: Mapping[str, str], owner: Mapping[str, str] | None
    ) -> bool:
        existing = await self.read_config_map(namespace=namespace, name=name)
        if existing is None:
            metadata: dict[str, Any] = {"name": name, "namespace": namespace}
            if owner is not None:
                metadata["ownerReferences"] = [{**owner, "controller": True, "blockOwnerDeletion": False}]
            body: Any = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}
            try:
                await self._client.request(
                    "POST", _path("api", "v1", "namespaces", namespace, "configmaps"), body=body
                )
                return True
            except KubeApiError as error:
                if error.status != 409:
                    raise
                existing = await self.read_config_map(namespace=namespace, name=name)
        current = dict((existing or {}).get("data") or {})
        changed = {key: value for key, value in data.items() if current.get(key) != value}
        if not changed:
            return False
        await self._client.request(
            "PATCH", _config_map_path(namespace, name), body={"data": changed}, content_type=MERGE_PATCH
        )
        return True

    async def read_service_account(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        """The ServiceAccount as stored, `None` if there is none; a refusal is a `KubernetesError`."""
        try:
            found = await self._client.request("GET", _service_account_path(namespace, name))
        except KubeApiError as error:
            if error.status == 404:
                return None
            raise KubernetesError(error.status, error.message) from None
        return dict(found)

    async def annotate_service_account(
        self, *, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> bool:
        """Set (or, for `None`, remove) just these annotations with a merge patch, so every other annotation
        and field stays as its owner wrote it; nothing is written when they already are so."""
        account = await self.read_service_account(namespace=namespace, name=name)
        if account is None:
            return False
        current = (account.get("metadata") or {}).get("annotations") or {}
        changed = {key: value for key, value in annotations.items() if current.get(key) != value}
        if not changed:
            return False
        try:
            await self._client.request(
                "PATCH",
                _service_account_path(namespace, name),
                body={"metadata": {"annotations": changed}},
                content_type=MERGE_PATCH,
            )
        except KubeApiError as error:
            if error.status == 404:
                return False
            raise KubernetesError(error.status, error.message) from None
        return True

    async def discover_issuer(self) -> str | None:
        """The service-account token issuer the API server publishes (kube-apiserver serves its OIDC
        discovery document at `/.well-known/openid-configuration`); `None` when it publishes none."""
        try:
            document = await self._client.request("GET", "/.well-known/openid-configuration")
        except KubeApiError as error:
            if error.status in (401, 403, 404):
                return None
            raise
        issuer = document.get("issuer") if isinstance(document, Mapping) else None
        return issuer.strip() if isinstance(issuer, str) and issuer.strip() else None

    async def close(self) -> None:
        await self._client.close()


_INSTANCE = os.environ.get("POD_NAME") or socket.gethostname()


def _service_account_path(namespace: str, name: str) -> str:
    return _path("api", "v1", "namespaces", namespace, "serviceaccounts", name)


def _config_map_path(namespace: str, name: str) -> str:
    return _path("api", "v1", "namespaces", namespace, "configmaps", name)
