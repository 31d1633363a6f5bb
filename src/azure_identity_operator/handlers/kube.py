"""Every Kubernetes write of the operator: status, its finalizer, Events, exported ConfigMaps.

kopf only watches; the controller (`handlers.controller`) writes through the official `kubernetes`
client, whose calls block, so each runs in a worker thread and never on the event loop. A write that finds
the object gone raises `ObjectGone`; one that lost a race with another writer raises `WriteConflict`;
any other refusal of a ConfigMap export is a `KubernetesError` the reconcilers understand.

The client's API classes are huge modules that take seconds to import; they load in a background thread
from start-up on, so the operator's start is not delayed and the first write waits (in its worker thread)
only for whatever is still loading.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import secrets
import socket
import threading
from collections.abc import Mapping
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from azure_identity_operator.api import constants
from azure_identity_operator.reconcilers.kube_port import KubernetesError

EVENT_SOURCE = "azure-identity-operator"
"""How Events name their source (`kubectl describe` shows it under From)."""
REPORTING_CONTROLLER = f"{constants.GROUP}/{EVENT_SOURCE}"
MAX_EVENT_MESSAGE = 1024
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ObjectGone(Exception):
    """The object was deleted while the operator worked on it."""


class WriteConflict(Exception):
    """The object changed between the operator's read and its write; its next watch event brings the news."""


def describe_failure(error: Exception) -> str:
    """One line for a status message: the API server's status and reason, not the client's full dump of
    headers and body."""
    if isinstance(error, ApiException):
        return f"the Kubernetes API answered {error.status} {error.reason}"
    return f"{type(error).__name__}: {error}"


def client_configuration() -> kubernetes.client.Configuration:
    """In a pod: the service account; elsewhere: the current kubeconfig (as kubectl and kopf use)."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)
    return configuration


class KubeWriter:
    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._api_client = api_client
        self._apis: dict[str, Any] = {}
        self._loaded = threading.Event()
        threading.Thread(target=self._load_apis, name="kubernetes-client-import", daemon=True).start()

    def _load_apis(self) -> None:
        try:
            self._apis["custom"] = kubernetes.client.CustomObjectsApi(self._api_client)
            self._apis["core"] = kubernetes.client.CoreV1Api(self._api_client)
        finally:
            self._loaded.set()

    def _api(self, name: str) -> Any:
        """The API object, once loaded (blocks: call it from a worker thread)."""
        self._loaded.wait()
        if name not in self._apis:
            # The background import failed: importing again here raises its error where it is used.
            factory = kubernetes.client.CustomObjectsApi if name == "custom" else kubernetes.client.CoreV1Api
            self._apis[name] = factory(self._api_client)
        return self._apis[name]

    async def _call(self, api: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(lambda: getattr(self._api(api), method)(*args, **kwargs))

    @classmethod
    def from_environment(cls) -> KubeWriter:
        return cls(kubernetes.client.ApiClient(client_configuration()))

    async def patch_status(
        self, *, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status subresource with the changed top-level fields; the object as stored."""
        return await self._custom(
            "patch_namespaced_custom_object_status",
            namespace,
            plural,
            name,
            {"status": dict(status)},
            content_type=MERGE_PATCH,
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
        return await self._custom(
            "patch_namespaced_custom_object", namespace, plural, name, operations, content_type=JSON_PATCH
        )

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
            await self._custom(
                "patch_namespaced_custom_object", namespace, plural, name, operations, content_type=JSON_PATCH
            )
        except ObjectGone:
            return

    async def _custom(
        self, method: str, namespace: str, plural: str, name: str, body: Any, *, content_type: str
    ) -> dict[str, Any]:
        try:
            result = await self._call(
                "custom",
                method,
                constants.GROUP,
                constants.VERSION,
                namespace,
                plural,
                name,
                body,
                _content_type=content_type,
            )
        except ApiException as error:
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
        await self._call("core", "create_namespaced_event", namespace, body)

    async def read_config_map(self, *, namespace: str, name: str) -> Any | None:
        try:
            return await self._call("core", "read_namespaced_config_map", name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def export_config_map(
        self, *, namespace: str, name: str, data: Mapping[str, str], owner: Mapping[str, str] | None
    ) -> bool:
        """Make ConfigMap `name` carry `data` (other keys kept); `True` if anything was written.

        A ConfigMap this call creates gets `owner` (apiVersion, kind, name, uid) as its owner reference, so
        Kubernetes removes it with the owner; an existing one keeps its owners and only gains the keys.
        Any refusal is a `KubernetesError` with the API server's status and message.
        """
        try:
            return await self._export_config_map(namespace=namespace, name=name, data=data, owner=owner)
        except ApiException as error:
            raise KubernetesError(error.status, _status_message(error)) from None

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
                await self._call("core", "create_namespaced_config_map", namespace, body)
                return True
            except ApiException as error:
                if error.status != 409:
                    raise
                existing = await self.read_config_map(namespace=namespace, name=name)
        current = dict((existing.data if existing is not None else None) or {})
        changed = {key: value for key, value in data.items() if current.get(key) != value}
        if not changed:
            return False
        await self._call("core", "patch_namespaced_config_map", name, namespace, {"data": changed})
        return True

    def close(self) -> None:
        self._api_client.close()


_INSTANCE = os.environ.get("POD_NAME") or socket.gethostname()


def _status_message(error: ApiException) -> str:
    """The `message` of the API server's Status body, else its reason."""
    import json

    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)
