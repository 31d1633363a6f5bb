"""A real kopf operator process (tests/kube_emulator/sample_operator.py) against the emulator through a
full lifecycle: create, status with observedGeneration, update, finalizer, events, a restart that catches
up with a change made while it was down, and delete; and an operator that outlives a restart of the API
server, whose watch resumes from before the server's watch window, gets the 410 ERROR event and relists."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fixtures.kube_emulator import WIDGETS_CRD, KubeEmulatorInfo, start_kube_emulator

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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_kopf_relists_when_its_watch_resumes_from_before_a_restarted_servers_window(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = _free_port()  # the restarted server must answer where the operator already points
    server = start_kube_emulator(state, "--port", str(port))
    log_path = tmp_path / "operator.log"
    operator: subprocess.Popen[bytes] | None = None
    try:
        info = server.info
        info.kubectl("apply", "-f", str(WIDGETS_CRD))
        environment = {**os.environ, "KUBECONFIG": str(info.kubeconfig)}
        command = [sys.executable, "-m", "kopf", "run", "--standalone", "--verbose", "-n", "default"]
        with log_path.open("wb") as log:
            operator = subprocess.Popen(
                [*command, str(OPERATOR)], stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        manifest = {
            "apiVersion": "example.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "survivor"},
            "spec": {"size": 1},
        }
        info.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        info.kubectl(
            "wait", "--for=jsonpath={.status.observedGeneration}=1", "widget/survivor", "--timeout=20s"
        )

        # Once the operator has stopped writing the widget, a write of something else: the restarted
        # server's window begins after it, so the operator's watch cannot resume where it left off
        def widget_version() -> str:
            return info.kubectl(
                "get", "widget", "survivor", "-o", "jsonpath={.metadata.resourceVersion}"
            ).stdout

        previous, current = "", widget_version()
        while current != previous:
            time.sleep(1)
            previous, current = current, widget_version()
        info.kubectl("create", "configmap", "unrelated")
        server.stop()
        server = start_kube_emulator(state, "--port", str(port))
        deadline = time.monotonic() + 30
        while "Restarting the watch-stream for widgets" not in log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, "the operator's watch was never told its version expired"
            time.sleep(0.2)
        info.kubectl("patch", "widget", "survivor", "--type=merge", "-p", '{"spec":{"size":5}}')
        info.kubectl(
            "wait", "--for=jsonpath={.status.observedGeneration}=2", "widget/survivor", "--timeout=20s"
        )
        assert (
            info.kubectl("get", "configmap", "widget-survivor", "-o", "jsonpath={.data.size}").stdout == "5"
        )
        relists = [
            record
            for record in server.info.audit_records()
            if (record["verb"], record["resource"]) == ("list", "widgets")
            and record["userAgent"].startswith("kopf")
        ]
        assert len(relists) >= 2, "the operator listed again after the expired watch"
    finally:
        if operator is not None:
            operator.send_signal(signal.SIGTERM)
            operator.wait(timeout=15)
        server.stop()
