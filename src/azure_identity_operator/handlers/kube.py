"""Kubernetes writes beyond kopf's own patches of the object being handled.

kopf patches the object a handler runs for; anything else (waking dependants, exporting IDs to a
ConfigMap) goes through the official `kubernetes` client, whose calls block, so each runs in a worker
thread and never on kopf's event loop.

The client's API classes are huge modules that take seconds to import; they load in a background thread
from start-up on, so the operator's start is not delayed and the first write waits (in its worker thread)
only for whatever is still loading.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from azure_identity_operator.api import constants


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

    async def _call(self, api: str, method: str, *args: Any) -> Any:
        return await asyncio.to_thread(lambda: getattr(self._api(api), method)(*args))

    @classmethod
    def from_environment(cls) -> KubeWriter:
        return cls(kubernetes.client.ApiClient(client_configuration()))

    async def patch_annotations(
        self, *, plural: str, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> bool:
        """Merge-patch annotations of one of our objects; `False` if it is gone (nothing to wake)."""
        body = {"metadata": {"annotations": dict(annotations)}}
        try:
            await self._call(
                "custom",
                "patch_namespaced_custom_object",
                constants.GROUP,
                constants.VERSION,
                namespace,
                plural,
                name,
                body,
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

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
        """
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
