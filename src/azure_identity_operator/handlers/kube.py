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
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import kopf

from azure_identity_operator.api import constants
from azure_identity_operator.handlers import kube_api
from azure_identity_operator.handlers.kube_api import JSON_PATCH, MERGE_PATCH, KubeApiError, KubeClient
from azure_identity_operator.reconcilers.kube_port import KubernetesError

_T = TypeVar("_T")

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

    async def patch_cluster_status(
        self, *, plural: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status of one of the operator's cluster-scoped objects (an access policy)."""
        path = _path("apis", constants.GROUP, constants.VERSION, plural, name, "status")
        try:
            result = await self._client.request(
                "PATCH", path, body={"status": dict(status)}, content_type=MERGE_PATCH
            )
        except KubeApiError as error:
            if error.status == 404:
                raise ObjectGone(f"{plural} {name}") from None
            if error.status in (409, 422):
                raise WriteConflict(f"{plural} {name}: {error.status} {error.reason}") from None
            raise
        return dict(result)

    async def list_policies(self) -> list[dict[str, Any]]:
        """Every IdentityAccessPolicy of the cluster."""
        path = _path("apis", constants.GROUP, constants.VERSION, constants.ACCESS_POLICY.plural)
        try:
            return await self._list(path)
        except KubeApiError as error:
            if error.status == 404:  # its CRD is not installed (yet): no policy is in force
                return []
            raise

    async def list_namespaces(self) -> list[dict[str, Any]]:
        """Every namespace (their labels select the access policies that govern them)."""
        return await self._list(_path("api", "v1", "namespaces"))

    async def _list(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": "500"}
        while True:
            page = await self._client.request("GET", path, params=params)
            items += [dict(item) for item in page.get("items") or ()]
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params = {"limit": "500", "continue": token}

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

    async def namespace_uid(self, name: str) -> str | None:
        """The uid of a namespace (`kube-system`'s names the cluster), `None` if it does not exist."""
        try:
            found = await self._client.request("GET", _path("api", "v1", "namespaces", name))
        except KubeApiError as error:
            if error.status == 404:
                return None
            raise
        uid = (found.get("metadata") or {}).get("uid") if isinstance(found, Mapping) else None
        return str(uid) if uid else None

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

    async def create_object(self, *, plural: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create one of the operator's objects; the object as stored."""
        path = _path("apis", constants.GROUP, constants.VERSION, "namespaces", namespace, plural)
        return dict(await self._client.request("POST", path, body=dict(body)))

    async def replace_spec(
        self, *, plural: str, namespace: str, name: str, uid: str, spec: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replace the spec of the object with that uid (a JSON patch that tests the uid, so an object of
        the same name created meanwhile is left alone); the object as stored."""
        operations = [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "replace", "path": "/spec", "value": dict(spec)},
        ]
        path = _path("apis", constants.GROUP, constants.VERSION, "namespaces", namespace, plural, name)
        return dict(await self._client.request("PATCH", path, body=operations, content_type=JSON_PATCH))

    async def delete_object(
        self, *, plural: str, namespace: str, name: str, uid: str
    ) -> dict[str, Any] | None:
        """Delete the object with that uid (a precondition, as `kubectl delete` with `--uid`); the object as
        it is while finalizers run, `None` once it is gone (also when it was gone before)."""
        path = _path("apis", constants.GROUP, constants.VERSION, "namespaces", namespace, plural, name)
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        try:
            answer = await self._client.request("DELETE", path, body=body)
        except KubeApiError as error:
            if error.status in (404, 409):  # gone, or another object of that name: not ours to delete
                return None
            raise
        if isinstance(answer, Mapping) and answer.get("kind") not in (None, "Status"):
            return dict(answer)
        return None

    async def close(self) -> None:
        await self._client.close()


Written = Callable[[str, str | None, Mapping[str, Any]], None]
"""Told of each object an `OwnedObjects` write returns: (kind, watch event type, object)."""


class OwnedObjects:
    """The `OwnedObjectsPort`: the parts a WorkloadIdentity owns, written through `KubeWriter`.

    Every object a write returns is handed to `written` (the controller's `observe`), so the next decision
    starts from it rather than from a watch event still on its way; that event then changes nothing.
    """

    def __init__(self, kube: KubeWriter) -> None:
        self._kube = kube
        self.written: Written | None = None

    async def create_owned(
        self,
        *,
        kind: constants.Kind,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        owner: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> None:
        body = {
            "apiVersion": constants.API_VERSION,
            "kind": kind.kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(labels),
                # Not blocking the owner's deletion: that would need the right to update its finalizers,
                # and the owner's own finalizer already waits for its parts.
                "ownerReferences": [{**owner, "controller": True, "blockOwnerDeletion": False}],
            },
            "spec": dict(spec),
        }
        created = await self._refusals(
            self._kube.create_object(plural=kind.plural, namespace=namespace, body=body)
        )
        self._tell(kind, "ADDED", created)

    async def replace_owned_spec(
        self, *, kind: constants.Kind, namespace: str, name: str, uid: str, spec: Mapping[str, Any]
    ) -> None:
        replaced = await self._refusals(
            self._kube.replace_spec(plural=kind.plural, namespace=namespace, name=name, uid=uid, spec=spec)
        )
        self._tell(kind, "MODIFIED", replaced)

    async def delete_owned(self, *, kind: constants.Kind, namespace: str, name: str, uid: str) -> None:
        remaining = await self._refusals(
            self._kube.delete_object(plural=kind.plural, namespace=namespace, name=name, uid=uid)
        )
        if remaining is not None:
            self._tell(kind, "MODIFIED", remaining)

    def _tell(self, kind: constants.Kind, event_type: str, body: Mapping[str, Any] | None) -> None:
        if body is not None and self.written is not None:
            self.written(kind.kind, event_type, body)

    @staticmethod
    async def _refusals(request: Awaitable[_T]) -> _T:
        try:
            return await request
        except KubeApiError as error:
            raise KubernetesError(error.status, error.message if error.status else str(error)) from None


_INSTANCE = os.environ.get("POD_NAME") or socket.gethostname()


def _service_account_path(namespace: str, name: str) -> str:
    return _path("api", "v1", "namespaces", namespace, "serviceaccounts", name)


def _config_map_path(namespace: str, name: str) -> str:
    return _path("api", "v1", "namespaces", namespace, "configmaps", name)
