"""A small kopf operator for `example.dev/v1` Widgets, used to prove kopf runs against the emulator.

It reconciles level-based on create, update and resume: writes a ConfigMap `widget-<name>` holding the
widget's size, sets `status.observedGeneration` and a Ready condition, and posts an Event. On delete it
removes the ConfigMap before kopf releases its finalizer. Run it with
`python -m kopf run --standalone -n NAMESPACE tests/kube_emulator/sample_operator.py` and KUBECONFIG set.
"""

from __future__ import annotations

import datetime
from typing import Any

import kopf
import kubernetes

GROUP, VERSION, PLURAL = "example.dev", "v1", "widgets"
FINALIZER = "example.dev/finalizer"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="example.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="example.dev", key="last-handled-configuration"
    )
    settings.watching.server_timeout = 60
    kubernetes.config.load_kube_config()


def _core() -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile(
    spec: kopf.Spec, meta: kopf.Meta, name: str, namespace: str, body: kopf.Body, patch: kopf.Patch, **_: Any
) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"widget-{name}", "labels": {"example.dev/widget": name}},
        "data": {"size": str(spec.get("size")), "color": str(spec.get("color"))},
    }
    core = _core()
    try:
        core.replace_namespaced_config_map(f"widget-{name}", namespace, config_map)
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise
        core.create_namespaced_config_map(namespace, config_map)
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
def cleanup(name: str, namespace: str, **_: Any) -> None:
    try:
        _core().delete_namespaced_config_map(f"widget-{name}", namespace)
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise
