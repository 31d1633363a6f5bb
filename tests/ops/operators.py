"""Operator processes with an environment of the test's choosing, and what tests read from them.

The suite-wide `operator` fixture runs one operator as the bootstrap service principal; operations tests
need others: another Azure credential, two replicas of one peering, operators split by namespace. Each
`OperatorProcess` is the real `python -m azure_identity_operator` with its own log file and metrics port.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")

_SERVING = re.compile(r"Serving /metrics and /readyz on 127\.0\.0\.1:(\d+)")

# Variables of the test runner's environment that would change which credential the operator uses.
_CREDENTIAL_VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "IDENTITY_OPERATOR_NAMESPACES",
    "IDENTITY_OPERATOR_LOG_FORMAT",
)


def eventually(probe: Callable[[], T | None], *, timeout: float = 30, what: str = "condition") -> T:
    """Poll `probe` until it returns something other than None/False; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class OperatorProcess:
    def __init__(self, name: str, *, env: Mapping[str, str], args: Sequence[str], log_dir: Path) -> None:
        self.name = name
        self.env = dict(env)
        self.args = ["--metrics-port=0", "--metrics-address=127.0.0.1", *args]
        self.log_file = log_dir / f"operator-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._terminated = False

    @staticmethod
    def base_environment(overrides: Mapping[str, str]) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in _CREDENTIAL_VARIABLES}
        env.update({"PYTHONUNBUFFERED": "1", **overrides})
        return env

    def start(self) -> OperatorProcess:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "azure_identity_operator", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to leave the peering object or clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM (once) without waiting: kopf leaves the peering object and exits on its own."""
        if self.process is not None and self.process.poll() is None and not self._terminated:
            self._terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    @property
    def metrics_url(self) -> str:
        def port() -> str | None:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"operator {self.name} exited:\n{self.log_text()[-4000:]}")
            found = _SERVING.search(self.log_text())
            return found.group(1) if found else None

        return f"http://127.0.0.1:{eventually(port, timeout=30, what=f'{self.name} metrics port')}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.metrics_url + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def wait_ready(self, timeout: float = 30) -> None:
        eventually(lambda: self.get("/readyz")[0] == 200, timeout=timeout, what=f"{self.name} /readyz")

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 when there are none)."""
        _, text = self.get("/metrics")
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                    total += sample.value
        return total
