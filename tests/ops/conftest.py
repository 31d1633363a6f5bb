"""Fixtures of the operations tests: a Kubernetes emulator of their own with the CRDs (the operator's and
kopf's peering kinds) applied, a factory of operator processes that are always stopped, and helpers to
declare identities and read them.

The operations tests run operators with other credentials, in pairs and split by namespace; a Kubernetes
emulator of their own keeps any other operator of the test session away from their objects, and makes its
audit log the record of exactly these operators' API calls.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo, start_kube_emulator

from .operators import OperatorProcess

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((ROOT / "crds").glob("identityoperator.dev_*.yaml"))
PEERING_CRDS = ROOT / "deploy" / "crds" / "kopf-peering-crds.yaml"
SYNC_INTERVAL_SECONDS = "30"

StartOperator = Callable[..., OperatorProcess]


CLUSTER_ISSUER = "https://oidc.ops.test/issuer"
"""The service-account issuer of the operations tests' cluster: in its tokens and its OIDC discovery
document, and the operator's configured issuer (unless a test leaves it to discovery)."""


@pytest.fixture(scope="session")
def ops_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeEmulatorInfo]:
    """A Kubernetes emulator for the operations tests alone, with every CRD the operator and kopf's peering
    need applied and established."""
    running = start_kube_emulator(
        tmp_path_factory.mktemp("ops-kube"), "--bookmark-interval", "1", "--issuer", CLUSTER_ISSUER
    )
    try:
        kube = running.info
        names: list[str] = []
        for path in [*CRD_FILES, PEERING_CRDS]:
            result = kube.kubectl("apply", "-f", str(path), "-o", "name")
            names += [line.strip() for line in result.stdout.splitlines() if line.strip()]
        kube.kubectl("wait", "--for=condition=Established", "--timeout=30s", *names)
        yield kube
    finally:
        running.stop()


@pytest.fixture
def ops_namespace(ops_kube: KubeEmulatorInfo) -> str:
    """A fresh namespace in the operations tests' emulator."""
    name = f"ops-{uuid.uuid4().hex[:10]}"
    ops_kube.kubectl("create", "namespace", name)
    return name


def operator_base_env(
    azure_emulator: AzureEmulatorInfo, kube_emulator: KubeEmulatorInfo, **overrides: str
) -> dict[str, str]:
    """The operator's environment with the emulators as Azure and Kubernetes, the bootstrap service
    principal as its Azure identity unless `overrides` change it (a value of "" removes a variable)."""
    env = OperatorProcess.base_environment(
        {
            **azure_emulator.operator_env(),
            "KUBECONFIG": str(kube_emulator.kubeconfig),
            "IDENTITY_OPERATOR_SYNC_INTERVAL": SYNC_INTERVAL_SECONDS,
            "IDENTITY_OPERATOR_OIDC_ISSUER": CLUSTER_ISSUER,
        }
    )
    for key, value in overrides.items():
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    return env


@pytest.fixture
def start_operator(
    ops_kube: KubeEmulatorInfo, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StartOperator]:
    """Start operator processes (`start_operator(name, env=..., args=[...])`); all are killed at the end,
    and a failing test prints the tail of each one's log."""
    started: list[OperatorProcess] = []

    def start(name: str, *, env: Mapping[str, str], args: Sequence[str] = ()) -> OperatorProcess:
        process = OperatorProcess(name, env=env, args=args, log_dir=tmp_path).start()
        started.append(process)
        return process

    yield start
    # Tests that need a clean shutdown stop their operators themselves; the rest need no goodbye, and this
    # emulator is the operations tests' own, so finalizers and peering entries left behind bother no one.
    for process in started:
        process.kill()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for process in started:
            print(f"\n----- operator {process.name} log (tail) -----\n{process.log_text()[-6000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def identity_manifest(name: str, namespace: str, resource_group: str) -> str:
    return json.dumps(
        {
            "apiVersion": "identityoperator.dev/v1alpha1",
            "kind": "UserAssignedIdentity",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"resourceGroup": resource_group, "location": "westus"},
        }
    )


def declare_identity(
    kube: KubeEmulatorInfo, namespace: str, resource_group: str, name: str | None = None
) -> str:
    name = name or f"id-{uuid.uuid4().hex[:8]}"
    kube.kubectl("apply", "-f", "-", input=identity_manifest(name, namespace, resource_group))
    return name


def wait_ready(kube: KubeEmulatorInfo, namespace: str, *names: str, timeout: int = 30) -> None:
    kube.kubectl(
        "wait",
        "--for=condition=Ready",
        f"--timeout={timeout}s",
        "-n",
        namespace,
        *[f"userassignedidentity/{name}" for name in names],
        timeout=timeout + 10,
    )


def get_object(kube: KubeEmulatorInfo, namespace: str, name: str) -> dict[str, Any]:
    result = kube.kubectl("get", "-n", namespace, "userassignedidentity", name, "-o", "json")
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def ready_condition(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            found: Mapping[str, Any] = condition
            return found
    return None
