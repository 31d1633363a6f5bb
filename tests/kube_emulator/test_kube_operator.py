"""A real kopf operator process (tests/kube_emulator/sample_operator.py) against the emulator through a
full lifecycle: create, status with observedGeneration, update, finalizer, events, a restart that catches
up with a change made while it was down, and delete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fixtures.kube_emulator import KubeEmulatorInfo

OPERATOR = Path(__file__).parent / "sample_operator.py"


@pytest.fixture
def operator(
    kube_emulator: KubeEmulatorInfo, namespace: str, widgets_crd: str, tmp_path: Path
) -> Iterator[Callable[[], None]]:
    """Starts the sample operator for `namespace`; calling the result restarts it."""
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        log = (tmp_path / f"operator-{len(processes)}.log").open("wb")
        environment = {**os.environ, "KUBECONFIG": str(kube_emulator.kubeconfig)}
        command = [sys.executable, "-m", "kopf", "run", "--standalone", "-n", namespace, str(OPERATOR)]
        processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment))
        log.close()

    def stop_last() -> None:
        process = processes[-1]
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)

    def restart() -> None:
        stop_last()
        start()

    start()
    yield restart
    if processes[-1].poll() is None:
        stop_last()


def test_kopf_operator_lifecycle(
    kube_emulator: KubeEmulatorInfo, namespace: str, operator: Callable[[], None]
) -> None:
    def kubectl(*args: str, stdin: str | None = None) -> str:
        return kube_emulator.kubectl("-n", namespace, *args, input=stdin).stdout

    def wait_observed(generation: int) -> None:
        kubectl(
            "wait",
            f"--for=jsonpath={{.status.observedGeneration}}={generation}",
            "widget/gizmo",
            "--timeout=20s",
        )

    manifest = {
        "apiVersion": "example.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "gizmo"},
        "spec": {"size": 2},
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    kubectl("wait", "--for=condition=Ready", "widget/gizmo", "--timeout=20s")
    wait_observed(1)
    widget = json.loads(kubectl("get", "widget", "gizmo", "-o", "json"))
    assert widget["metadata"]["finalizers"] == ["example.dev/finalizer"]
    assert kubectl("get", "configmap", "widget-gizmo", "-o", "jsonpath={.data.size}") == "2"
    description = kubectl("describe", "widget", "gizmo")
    assert "Reconciled" in description
    assert "widget gizmo has size 2" in description

    kubectl("patch", "widget", "gizmo", "--type=merge", "-p", '{"spec":{"size":4}}')
    wait_observed(2)
    assert kubectl("get", "configmap", "widget-gizmo", "-o", "jsonpath={.data.size}") == "4"

    operator()  # restart, with a change landing while the operator is down or starting
    kubectl("patch", "widget", "gizmo", "--type=merge", "-p", '{"spec":{"size":7}}')
    wait_observed(3)
    assert kubectl("get", "configmap", "widget-gizmo", "-o", "jsonpath={.data.size}") == "7"
    assert kubectl("get", "widget", "gizmo", "-o", "jsonpath={.status.conditions[0].message}") == "size 7"

    kubectl("delete", "widget", "gizmo", "--timeout=20s")
    assert kubectl("get", "widgets,configmaps", "-o", "name") == ""
