"""A small kopf operator for `example.dev/v1` Widgets, used to prove kopf runs against the emulator.

It reconciles level-based on create, update and resume: writes a ConfigMap `widget-<name>` holding the
widget's size, sets `status.observedGeneration` and a Ready condition, and posts an Event. On delete it
removes the ConfigMap before kopf releases its finalizer. Run it with
`python -m kopf run --standalone -n NAMESPACE tests/kube_emulator/sample_operator.py` and KUBECONFIG set.
It logs in from the kubeconfig itself and writes ConfigMaps with aiohttp (kopf's own HTTP client), so it
starts without importing the kubernetes client.
"""

from __future__ import annotations

import base64
import datetime
import os
import ssl
from typing import Any

import aiohttp
import kopf
import yaml

GROUP, VERSION, PLURAL = "example.dev", "v1", "widgets"
FINALIZER = "example.dev/finalizer"


def _kubeconfig() -> dict[str, Any]:
    with open(os.environ["KUBECONFIG"], encoding="utf-8") as file:
        config: dict[str, Any] = yaml.safe_load(file)
    return config


def _cluster() -> dict[str, Any]:
    cluster: dict[str, Any] = _kubeconfig()["clusters"][0]["cluster"]
    return cluster


def _token() -> str:
    return str(_kubeconfig()["users"][0]["user"].get("token", ""))


def _server() -> str:
    return str(_cluster()["server"])


def _ca_data() -> bytes | None:
    encoded = _cluster().get("certificate-authority-data")
    return base64.b64decode(encoded) if encoded else None


def _ssl_context() -> ssl.SSLContext | None:
    ca_data = _ca_data()
    return ssl.create_default_context(cadata=ca_data.decode()) if ca_data else None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="example.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="example.dev", key="last-handled-configuration"
    )
    settings.watching.server_timeout = 60


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    return kopf.ConnectionInfo(server=_server(), ca_data=_ca_data(), token=_token() or None)


async def _request(method: str, path: str, body: dict[str, Any] | None = None) -> int:
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=_ssl_context() or True),
            headers={"Authorization": f"Bearer {_token()}"} if _token() else None,
        ) as session,
        session.request(method, _server() + path, json=body) as response,
    ):
        if response.status >= 400 and response.status != 404:
            raise kopf.TemporaryError(f"{method} {path}: {response.status} {await response.text()}", delay=1)
        return response.status


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def reconcile(
    spec: kopf.Spec, meta: kopf.Meta, name: str, namespace: str, body: kopf.Body, patch: kopf.Patch, **_: Any
) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"widget-{name}", "labels": {"example.dev/widget": name}},
        "data": {"size": str(spec.get("size")), "color": str(spec.get("color"))},
    }
    collection = f"/api/v1/namespaces/{namespace}/configmaps"
    if await _request("PUT", f"{collection}/widget-{name}", config_map) == 404:
        await _request("POST", collection, config_map)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch.status["observedGeneration"] = meta["generation"]
    patch.status["conditions"] = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Reconciled",
            "message": f"size {spec.get('size')}",
            "lastTransitionTime": now,
        }
    ]
    kopf.info(body, reason="Reconciled", message=f"widget {name} has size {spec.get('size')}")


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def cleanup(name: str, namespace: str, **_: Any) -> None:
    await _request("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/widget-{name}")
