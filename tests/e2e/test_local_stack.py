"""`make run` end to end: `python -m local_stack` brings up both emulators and the operator, creates the Azure
resources the examples name, applies every example, waits until all are Ready, prints `kubectl get` output
and a kubeconfig that works, keeps running, and stops everything on Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_stack.estate import DEMO_SUBSCRIPTION_ID, demo_estate
from local_stack.stack import DEFAULT_EXAMPLES, EXAMPLES_DIR, LocalStack

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBECTL = "/usr/bin/kubectl"
GROUP = "identityoperator.dev"


def example_objects() -> dict[tuple[str, str], Path]:
    """(kind, name) of every operator object in examples/, with the file it is in."""
    found = {}
    for path in sorted(EXAMPLES_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and str(document["apiVersion"]).startswith(f"{GROUP}/"):
                found[(document["kind"], document["metadata"]["name"])] = path
    return found


def emulator_state(workdir: Path) -> dict[str, Any]:
    """The Azure emulator's whole world, read from its control endpoint (no authentication)."""
    ready = json.loads((workdir / "azure-emulator.ready.json").read_text())
    context = ssl.create_default_context(cafile=ready["ca_file"])
    with urllib.request.urlopen(f"{ready['control_url']}/state", context=context, timeout=10) as response:
        world: dict[str, Any] = json.loads(response.read())["world"]
        return world


README = REPO_ROOT / "README.md"


def _long_options(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", help_text)) - {"--help"}


def test_the_readme_documents_every_option_setting_and_link() -> None:
    """The README is where a newcomer and a cluster operator start: what it names must exist, and every
    option of `make run`, every flag of the operator and every variable it reads must be in it."""
    readme = README.read_text()
    for module in ("local_stack", "azure_identity_operator"):
        usage = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        missing = {option for option in _long_options(usage) if f"`{option}" not in readme}
        assert not missing, (module, missing)
    config = (REPO_ROOT / "src/azure_identity_operator/config.py").read_text()
    variables = set(re.findall(r'"((?:AZURE|IDENTITY_OPERATOR)_[A-Z_]+)"', config))
    assert "IDENTITY_OPERATOR_SYNC_INTERVAL" in variables
    assert not {v for v in variables if f"`{v}`" not in readme}
    for target in re.findall(r"\]\(((?!https?://)[^)#]+)(?:#[^)]*)?\)", readme):
        assert (REPO_ROOT / target).exists(), target


def test_the_default_examples_are_every_example() -> None:
    assert sorted(DEFAULT_EXAMPLES) == sorted(path.name for path in EXAMPLES_DIR.glob("*.yaml"))


def test_make_run_serves_ready_examples_until_interrupted(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "local_stack", "--workdir", str(tmp_path), "--timeout", "60"],
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
        assert up.wait(timeout=100), "".join(lines)
        output = "".join(lines)
        assert f"Azure subscription:  {DEMO_SUBSCRIPTION_ID}" in output
        # The demo workload signed in with its projected token, and its roles decided what it could read.
        assert "Workload identity check failed" not in output, output
        assert "it may read Key Vault kv-demo" in output
        assert "it may not read resource group batch (AuthorizationFailed" in output
        # The category listing shows every object of every example, Ready.
        listing = output.split("$ kubectl get azureidentity -A", 1)[1]
        objects = example_objects()
        assert {kind for kind, _ in objects} == {
            "UserAssignedIdentity",
            "FederatedIdentityCredential",
            "RoleAssignment",
            "SystemAssignedIdentity",
            "WorkloadIdentity",
            "RoleDefinition",
        }
        # The WorkloadIdentity's parts are listed too, Ready.
        for kind in ("UserAssignedIdentity", "FederatedIdentityCredential"):
            assert re.search(rf"{kind.lower()}\.{GROUP}/billing\s+True\s+Succeeded", listing), kind
        for kind, name in objects:
            assert re.search(rf"{kind.lower()}\.{GROUP}/{name}\s+True\s+Succeeded", listing), (kind, name)
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
        items = {(item["kind"], item["metadata"]["name"]): item for item in json.loads(got.stdout)["items"]}
        assert items["UserAssignedIdentity", "demo-workload"]["status"]["clientId"]
        credential = items["FederatedIdentityCredential", "demo-workload"]["status"]
        assert credential["subject"] == "system:serviceaccount:default:demo-workload"
        assert credential["issuer"] == "https://kubernetes.default.svc.cluster.local"

        # Azure holds what the examples declare.
        every = subprocess.run(
            [KUBECTL, f"--kubeconfig={kubeconfig.group(1)}", "get", "azureidentity", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        statuses = {
            (item["kind"], item["metadata"]["name"]): item["status"]
            for item in json.loads(every.stdout)["items"]
        }
        # The examples' objects, and the parts the WorkloadIdentity made: its identity, its credential and
        # one RoleAssignment per role.
        parts = set(statuses) - set(objects)
        assert set(objects) <= set(statuses)
        assert {kind for kind, _ in parts} == {
            "UserAssignedIdentity",
            "FederatedIdentityCredential",
            "RoleAssignment",
        }
        assert len(parts) == 4
        assert (
            statuses["WorkloadIdentity", "billing"]["clientId"]
            == statuses["UserAssignedIdentity", "billing"]["clientId"]
        )
        world = emulator_state(tmp_path)
        resources = {r["id"].lower(): r for r in world["resources"]}
        vm = resources[
            f"/subscriptions/{DEMO_SUBSCRIPTION_ID}/resourcegroups/batch/providers/"
            "microsoft.compute/virtualmachines/batch-vm"
        ]
        assert vm["identity"]["principalId"] == statuses["SystemAssignedIdentity", "batch-vm"]["principalId"]
        attached = {key.lower() for key in vm["identity"]["userAssignedIdentities"]}
        assert statuses["UserAssignedIdentity", "batch-shared"]["id"].lower() in attached
        granted = {
            (a["scope"].lower(), a["principal_id"], a["role_definition_id"].rsplit("/", 1)[1])
            for a in world["role_assignments"]
        }
        # The conditional example: its condition, as Azure holds it.
        conditional = next(
            a
            for a in world["role_assignments"]
            if a["name"] == statuses["RoleAssignment", "batch-vm-reports"]["name"]
        )
        assert "StringEquals 'reports'" in conditional["condition"]
        assert conditional["condition_version"] == "2.0"
        for (kind, name), status in statuses.items():
            if kind == "RoleAssignment":
                grant = (
                    status["scope"].lower(),
                    status["principalId"],
                    status["roleDefinitionId"].rsplit("/", 1)[1],
                )
                assert grant in granted, name
        # The operator's metrics count every object as Ready, the WorkloadIdentity's parts included.
        metrics_url = re.search(r"metrics: curl -s (\S+)", output)
        assert metrics_url is not None, output
        with urllib.request.urlopen(metrics_url.group(1), timeout=10) as response:
            metrics = response.read().decode()
        for kind in {kind for kind, _ in statuses}:
            count = sum(1 for k, _ in statuses if k == kind)
            sample = (
                f'azure_identity_operator_objects{{kind="{kind}",ready="True",reason="Succeeded"}} {count}.0'
            )
            assert sample in metrics, (sample, metrics)
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


def test_a_single_example_object_is_seen_ready(tmp_path: Path) -> None:
    """With one object left to wait for, kubectl answers the object itself rather than a List."""
    stack = LocalStack(
        workdir=tmp_path, examples=[EXAMPLES_DIR / "user-assigned-identity.yaml"], say=lambda _: None
    )
    try:
        stack.up(ready_timeout=60)
        stack.wait_ready(["userassignedidentity.identityoperator.dev/demo-workload"], timeout=30)
    finally:
        stack.down()


def arm(stack: LocalStack, method: str, path: str, api_version: str, body: object = None) -> dict[str, Any]:
    """One ARM request to the stack's Azure emulator, as the demo's own service principal."""
    request = urllib.request.Request(
        f"{stack.azure['arm_endpoint']}/subscriptions/{DEMO_SUBSCRIPTION_ID}{path}?api-version={api_version}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {stack.arm_token()}", "Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=stack.azure["ca_file"])
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read() or b"{}")
        return answer


def request_counts(stack: LocalStack) -> dict[str, int]:
    context = ssl.create_default_context(cafile=stack.azure["ca_file"])
    with urllib.request.urlopen(
        f"{stack.azure['control_url']}/requests", context=context, timeout=10
    ) as answer:
        counts: dict[str, int] = json.loads(answer.read())["counts"]
        return counts


VM = "/resourceGroups/batch/providers/Microsoft.Compute/virtualMachines/batch-vm"
SLOT = "/resourceGroups/storefront/providers/Microsoft.Web/sites/storefront/slots/staging"


def test_a_restart_on_the_same_workdir_creates_only_the_missing_azure_resources(tmp_path: Path) -> None:
    """`make run --workdir DIR` again: the Azure emulator's saved state already holds the demo resources,
    and a PUT would replace each as a whole (a VM's system-assigned identity with it). Only what is missing
    is created; what exists, with what was done to it since, is left as it is."""
    said: list[str] = []
    stack = LocalStack(workdir=tmp_path, examples=(), say=said.append)
    try:
        stack.up()
        enabled = arm(stack, "PATCH", VM, "2024-11-01", {"identity": {"type": "SystemAssigned"}})
        principal = enabled["identity"]["principalId"]
        arm(stack, "DELETE", SLOT, "2024-04-01")
    finally:
        stack.down()
    estate = demo_estate("tenant")
    assert f"{len(estate)} in resource groups" in "\n".join(said)

    said.clear()
    stack = LocalStack(workdir=tmp_path, examples=(), say=said.append)
    try:
        stack.up()
        vm = arm(stack, "GET", VM, "2024-11-01")
        arm(stack, "GET", SLOT, "2024-04-01")  # created again
        puts = {key for key, count in request_counts(stack).items() if key.startswith("PUT ") and count}
    finally:
        stack.down()
    assert vm.get("identity", {}).get("principalId") == principal, "the VM was replaced with its identity"
    assert puts == {f"PUT /subscriptions/{DEMO_SUBSCRIPTION_ID}{SLOT}"}
    assert f"(1 created, {len(estate) - 1} already there)" in "\n".join(said)
