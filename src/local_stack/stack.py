"""The local stack: both emulators and the operator as child processes, wired together, with the examples.

`LocalStack.up()` starts the Azure emulator (serving the examples' subscription) and the Kubernetes API
emulator, each on a free loopback port, applies the CRDs, creates in Azure the resource groups and
resources the examples refer to that its saved state lacks (`estate.py`), starts the operator with the
emulators' settings, applies the examples and waits until every object in them is Ready. `down()` stops
everything in the reverse order. Every process logs to a file in the working directory, which also holds
the kubeconfig a user points kubectl at.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from local_stack.estate import (
    DEMO_LOCATION,
    DEMO_SUBSCRIPTION_ID,
    AzureResource,
    demo_estate,
)
from local_stack.estate import EXAMPLES_RESOURCE_GROUP as EXAMPLES_RESOURCE_GROUP  # for the benchmarks
from local_stack.workload import (
    CLIENT_ID_ANNOTATION,
    DEMO_WORKLOAD,
    WorkloadCheck,
    check_workload_identity,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
GROUP = "identityoperator.dev"
CRDS_DIR = REPO_ROOT / "crds"
EXAMPLES_DIR = REPO_ROOT / "examples"
DEFAULT_EXAMPLES = (
    "user-assigned-identity.yaml",
    "federated-identity-credential.yaml",
    "role-assignment.yaml",
    "custom-role.yaml",
    "system-assigned-identity.yaml",
    "system-assigned-and-attached-identities.yaml",
    "workload-identity.yaml",
)
"""Every manifest in examples/, in the order a reader meets them in the README."""
EXAMPLES_LOCATION = DEMO_LOCATION
CLUSTER_ISSUER = "https://kubernetes.default.svc.cluster.local"
"""The service-account issuer the Kubernetes emulator signs tokens with (kube-apiserver's usual default);
the operator fills it into federated credentials that name no issuer."""
SYNC_INTERVAL_SECONDS = 30.0
STARTUP_TIMEOUT_SECONDS = 60.0


class StackError(RuntimeError):
    """A part of the stack failed to start or to become Ready; the message says which and where its log is."""


@dataclasses.dataclass
class Child:
    """One child process and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclasses.dataclass
class LocalStack:
    workdir: Path
    examples: Sequence[Path] = tuple(EXAMPLES_DIR / name for name in DEFAULT_EXAMPLES)
    namespace: str = "default"
    sync_interval: float = SYNC_INTERVAL_SECONDS
    kubectl_path: str = dataclasses.field(
        default_factory=lambda: shutil.which("kubectl") or "/usr/bin/kubectl"
    )
    say: Callable[[str], None] = print
    children: list[Child] = dataclasses.field(default_factory=list)
    azure: dict[str, Any] = dataclasses.field(default_factory=dict)
    kube: dict[str, Any] = dataclasses.field(default_factory=dict)
    liveness_port: int = 0
    metrics_port: int = 0

    @property
    def kubeconfig(self) -> Path:
        return Path(self.kube["kubeconfig"])

    @property
    def workload_token_file(self) -> Path:
        """The projected service-account token of the ServiceAccount `billing` (once it exists)."""
        return self.workdir / f"{DEMO_WORKLOAD}.token"

    def check_workload_identity(self) -> WorkloadCheck:
        """Sign in to Azure as the demo workload does in a pod, and see what its roles let it read."""
        annotation = CLIENT_ID_ANNOTATION.replace(".", "\\.")  # a key with dots, in kubectl's JSONPath
        client_id = self.kubectl(
            "get",
            "-n",
            self.namespace,
            f"serviceaccount/{DEMO_WORKLOAD}",
            "-o",
            f"jsonpath={{.metadata.annotations.{annotation}}}",
        ).stdout
        return check_workload_identity(self.azure, client_id, self.workload_token_file)

    # --- lifecycle ---------------------------------------------------------------------------------------

    def up(self, *, ready_timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        if not Path(self.kubectl_path).exists():
            raise StackError("kubectl is required (https://kubernetes.io/docs/tasks/tools/)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.say(f"Working directory: {self.workdir}")
        azure_state = self.workdir / "azure"
        self.azure = self._start_emulator(
            "azure-emulator",
            [
                "azure_emulator",
                "serve",
                "--port",
                "0",
                "--state-dir",
                str(azure_state),
                "--persist",
                # The subscription the examples name, so they apply as written.
                "--subscription-id",
                DEMO_SUBSCRIPTION_ID,
            ],
        )
        self.say(f"Azure emulator:      {self.azure['arm_endpoint']}")
        self.say(f"Azure subscription:  {self.azure['subscription_id']}")
        self.kube = self._start_emulator(
            "kube-emulator",
            [
                "kube_emulator",
                "serve",
                "--port",
                "0",
                "--state-dir",
                str(self.workdir / "kube"),
                "--issuer",
                CLUSTER_ISSUER,
                # The token a pod running as the demo workload's ServiceAccount would find in its volume.
                "--project-token",
                f"{self.namespace}/{DEMO_WORKLOAD}={self.workload_token_file}",
            ],
        )
        self.say(f"Kubernetes emulator: {self.kube['server']}")
        self._apply_crds()
        self._create_estate()
        self._start_operator()
        self.say(f"Operator:            ready; metrics at {self.metrics_url}")
        if self.examples:
            self.apply_examples(ready_timeout)

    def down(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()

    def failed_child(self) -> Child | None:
        for child in self.children:
            if not child.alive():
                return child
        return None

    # --- parts ---------------------------------------------------------------------------------------------

    def _spawn(self, name: str, arguments: list[str], env: dict[str, str] | None = None) -> Child:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", *arguments],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                cwd=REPO_ROOT,
                # Ctrl-C reaches only the stack, which then stops its children in order.
                start_new_session=True,
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def _start_emulator(self, name: str, arguments: list[str]) -> dict[str, Any]:
        ready_file = self.workdir / f"{name}.ready.json"
        ready_file.unlink(missing_ok=True)
        child = self._spawn(name, [*arguments, "--ready-file", str(ready_file)])
        self._wait(lambda: ready_file.exists(), child, f"{name} to listen")
        ready: dict[str, Any] = json.loads(ready_file.read_text())
        return ready

    def _wait(self, condition: Callable[[], bool], child: Child, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if not child.alive():
                raise StackError(f"{child.name} exited while waiting for {what}:\n{child.log_tail()}")
            if time.monotonic() > deadline:
                raise StackError(f"timed out waiting for {what}; see {child.log_path}")
            time.sleep(0.1)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise StackError(f"kubectl {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def _apply_crds(self) -> None:
        crds = sorted(CRDS_DIR.glob("identityoperator.dev_*.yaml"))
        for path in crds:
            self.kubectl("apply", "-f", str(path))
        names = [f"crd/{path.stem.split('_', 1)[1]}.identityoperator.dev" for path in crds]
        self.kubectl("wait", "--for=condition=Established", "--timeout=30s", *names)

    def _create_estate(self) -> None:
        """What the examples refer to, created in the Azure emulator as a user's own deployment would.

        Only what is missing is created. With `--workdir` the emulator's state survives a restart, and a
        PUT of a resource that exists replaces it as a whole: the VM and the apps would lose the identity
        blocks the operator wrote (their system-assigned principals replaced by new ones at its next
        reconcile), so existing resources are left exactly as they are.
        """
        token = self.arm_token()
        resources = demo_estate(self.azure["tenant_id"])
        created = 0
        for resource in resources:
            if not self._arm_exists(resource, token):
                self._arm_put(resource, token)
                created += 1
        groups = [r.description.split()[-1] for r in resources if r.description.startswith("resource group")]
        kept = f", {len(resources) - created} already there" if created < len(resources) else ""
        self.say(
            f"Azure resources:     {len(resources)} in resource groups {', '.join(groups)}"
            f" ({created} created{kept})"
        )

    def _arm_request(self, resource: AzureResource, token: str, method: str) -> urllib.request.Request:
        resource_id = resource.resource_id(self.azure["subscription_id"])
        url = f"{self.azure['arm_endpoint']}{resource_id}?api-version={resource.api_version}"
        body = json.dumps(resource.body).encode() if method == "PUT" else None
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return urllib.request.Request(url, data=body, method=method, headers=headers)

    def _arm_exists(self, resource: AzureResource, token: str) -> bool:
        """Whether Azure holds the resource (404 when it, or its resource group, does not exist)."""
        try:
            with urllib.request.urlopen(
                self._arm_request(resource, token, "GET"), context=self._tls(), timeout=30
            ) as response:
                response.read()
                return True
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            detail = error.read().decode(errors="replace")
            raise StackError(f"reading {resource.description} in Azure: HTTP {error.code} {detail}") from None

    def _arm_put(self, resource: AzureResource, token: str) -> None:
        try:
            with urllib.request.urlopen(
                self._arm_request(resource, token, "PUT"), context=self._tls(), timeout=30
            ) as response:
                response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise StackError(
                f"creating {resource.description} in Azure: HTTP {error.code} {detail}"
            ) from None

    def arm_token(self) -> str:
        """A token for ARM as the emulator's default service principal, the one the estate is made with."""
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": self.azure["client_id"],
                "client_secret": self.azure["client_secret"],
                "scope": "https://management.azure.com/.default",
            }
        ).encode()
        url = f"{self.azure['authority_host']}/{self.azure['tenant_id']}/oauth2/v2.0/token"
        with urllib.request.urlopen(
            urllib.request.Request(url, data=form, method="POST"), context=self._tls(), timeout=30
        ) as response:
            token: str = json.loads(response.read())["access_token"]
            return token

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.azure["ca_file"])

    def operator_env(self) -> dict[str, str]:
        """The operator's environment: the standard Azure variables pointing at the emulator."""
        return {
            "AZURE_CLIENT_ID": self.azure["client_id"],
            "AZURE_CLIENT_SECRET": self.azure["client_secret"],
            "AZURE_TENANT_ID": self.azure["tenant_id"],
            "AZURE_SUBSCRIPTION_ID": self.azure["subscription_id"],
            "AZURE_AUTHORITY_HOST": self.azure["authority_host"],
            "AZURE_RESOURCE_MANAGER_ENDPOINT": self.azure["arm_endpoint"],
            "SSL_CERT_FILE": self.azure["ca_file"],
            "REQUESTS_CA_BUNDLE": self.azure["ca_file"],
            "KUBECONFIG": str(self.kubeconfig),
            "IDENTITY_OPERATOR_OIDC_ISSUER": CLUSTER_ISSUER,
            "IDENTITY_OPERATOR_SYNC_INTERVAL": str(self.sync_interval),
        }

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def _start_operator(self) -> None:
        """The operator as it runs in a pod, with its probes and metrics on loopback ports."""
        self.liveness_port, self.metrics_port = _free_port(), _free_port()
        arguments = [
            "azure_identity_operator",
            f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz",
            f"--metrics-port={self.metrics_port}",
            "--metrics-address=127.0.0.1",
        ]
        child = self._spawn("operator", arguments, self.operator_env())
        # Ready (as its readiness probe says) once its watches run, so the examples are seen at once.
        readiness = f"http://127.0.0.1:{self.metrics_port}/readyz"
        self._wait(lambda: _answers(readiness), child, "the operator's readiness probe")

    def apply_examples(self, timeout: float) -> None:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        self.kubectl("apply", "-f", "-", input=json.dumps(namespace))
        for path in self.examples:
            self.kubectl("apply", "-n", self.namespace, "-f", str(path))
        resources = self.example_resources()
        self.say(
            f"Applied {len(self.examples)} example file(s) to namespace {self.namespace}; "
            f"waiting until their {len(resources)} objects are Ready"
        )
        self.wait_ready(resources, timeout)

    def wait_ready(self, resources: Sequence[str], timeout: float) -> None:
        """Wait until every one of `resources` reports Ready=True, saying so as each does.

        One `kubectl get` of all of them per round, rather than `kubectl wait` on each in turn, so that a
        timeout can name every object still not Ready with its reason and message.
        """
        deadline = time.monotonic() + timeout
        pending = list(resources)
        conditions: dict[str, dict[str, Any]] = {}
        while pending:
            conditions = self._ready_conditions(pending)
            for resource in list(pending):
                condition = conditions.get(resource, {})
                if condition.get("status") == "True":
                    pending.remove(resource)
                    self.say(f"  Ready  {_short(resource)}")
            if not pending:
                return
            if time.monotonic() > deadline:
                lines = [
                    f"  {_short(r)}: Ready={conditions.get(r, {}).get('status', 'Unknown')} "
                    f"{conditions.get(r, {}).get('reason', '')}: {conditions.get(r, {}).get('message', '')}"
                    for r in pending
                ]
                raise StackError(
                    f"not Ready after {timeout:g} s:\n"
                    + "\n".join(lines)
                    + f"\nsee {self.workdir}/operator.log"
                )
            failed = self.failed_child()
            if failed is not None:
                raise StackError(
                    f"{failed.name} exited while the examples were reconciled:\n{failed.log_tail()}"
                )
            time.sleep(0.3)

    def _ready_conditions(self, resources: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The Ready condition of each resource (`{}` while it has none), keyed as given."""
        listed = json.loads(
            self.kubectl("get", "-n", self.namespace, "-o", "json", "--ignore-not-found", *resources).stdout
            or '{"items": []}'
        )
        # kubectl answers a List for several names but the object itself for exactly one.
        items = listed.get("items", [listed])
        found: dict[str, dict[str, Any]] = {}
        for item in items:
            key = f"{item['kind'].lower()}.{GROUP}/{item['metadata']['name']}"
            conditions = item.get("status", {}).get("conditions", [])
            found[key] = next((c for c in conditions if c.get("type") == "Ready"), {})
        return found

    def example_resources(self) -> list[str]:
        """`<kind>.identityoperator.dev/<name>` of every operator object in the examples."""
        resources = []
        for path in self.examples:
            for document in yaml.safe_load_all(path.read_text()):
                if document and str(document.get("apiVersion", "")).startswith(f"{GROUP}/"):
                    resources.append(f"{document['kind'].lower()}.{GROUP}/{document['metadata']['name']}")
        return resources


def _short(resource: str) -> str:
    """`userassignedidentity/demo-workload` for `userassignedidentity.identityoperator.dev/demo-workload`."""
    kind, name = resource.split("/", 1)
    return f"{kind.split('.', 1)[0]}/{name}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
