"""`make run` end to end: `python -m local_stack` brings up both emulators and the operator, applies the
examples, waits until they are Ready, prints `kubectl get` output and a kubeconfig that works, keeps
running, and stops everything on Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBECTL = "/usr/bin/kubectl"


def test_make_run_serves_ready_examples_until_interrupted(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "local_stack", "--workdir", str(tmp_path), "--timeout", "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
    )
    lines: list[str] = []
    up = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Press Ctrl-C to stop." in line:
                up.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert up.wait(timeout=75), "".join(lines)
        output = "".join(lines)
        assert re.search(
            r"userassignedidentity\.identityoperator\.dev/demo-workload\s+True\s+Succeeded", output
        )
        assert re.search(
            r"federatedidentitycredential\.identityoperator\.dev/demo-workload\s+True\s+Succeeded", output
        )
        kubeconfig = re.search(r"export KUBECONFIG=(\S+)", output)
        assert kubeconfig is not None, output
        server = re.search(r"Kubernetes emulator: (\S+)", output)
        assert server is not None

        # The printed kubeconfig works with plain kubectl.
        got = subprocess.run(
            [KUBECTL, f"--kubeconfig={kubeconfig.group(1)}", "get", "uai,fic", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        items = {item["kind"]: item for item in json.loads(got.stdout)["items"]}
        assert items["UserAssignedIdentity"]["status"]["clientId"]
        assert items["FederatedIdentityCredential"]["status"]["subject"] == (
            "system:serviceaccount:default:demo-workload"
        )
        assert items["FederatedIdentityCredential"]["status"]["issuer"] == (
            "https://kubernetes.default.svc.cluster.local"
        )
        assert process.poll() is None, "it keeps running until interrupted"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        reader.join(timeout=5)
    assert code == 0, "".join(lines)
    assert "Stopping" in "".join(lines)
    # Its children are gone with it: the Kubernetes emulator no longer answers.
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(f"{server.group(1)}/version", timeout=1).close()
        except (urllib.error.URLError, ConnectionError):
            break
        assert time.monotonic() < deadline, "the Kubernetes emulator outlived the local stack"
        time.sleep(0.2)
