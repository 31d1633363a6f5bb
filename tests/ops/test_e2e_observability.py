"""Metrics, readiness, structured logs and GitOps health, read from a real operator run.

One operator (client secret, debug logging, JSON logs) reconciles identities in three situations: one
that becomes Ready, one whose first write Azure throttles, and one in a resource group that does not exist.
Covers: kopf's `/healthz` and `/readyz`; `/metrics` with reconciles by kind and result, ARM requests by
operation and status code, throttling waits and objects by Ready state; JSON log lines naming the object
and the ARM request ID, deletion included; no secret or token anywhere in the log; and the Argo CD health
check (docs/argocd-health.lua) and the Flux health check expressions (docs/monitoring.md) on the objects
exactly as the operator left them, before it ever saw them, and after a spec change it has not seen yet.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from typing import Any

import pytest

from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo

from .argocd import ArgoHealthCheck
from .conftest import (
    StartOperator,
    declare_identity,
    get_object,
    operator_base_env,
    ready_condition,
    wait_ready,
)
from .flux import FluxHealthCheck
from .operators import eventually

pytestmark = pytest.mark.e2e

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+")
WRITE = "Microsoft.ManagedIdentity/userAssignedIdentities/write"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_metrics_logs_and_health_of_a_real_run(
    start_operator: StartOperator,
    azure_emulator: AzureEmulatorInfo,
    ops_kube: KubeEmulatorInfo,
    resource_group: str,
    ops_namespace: str,
) -> None:
    argo = ArgoHealthCheck()
    liveness_port = free_port()
    flux = FluxHealthCheck()
    ready_name = declare_identity(ops_kube, ops_namespace, resource_group)
    unseen = get_object(ops_kube, ops_namespace, ready_name)
    assert argo(unseen).status == "Progressing"

    throttled_name = f"throttled-{resource_group[-6:]}"
    azure_emulator.inject_fault(
        path_regex=f"userAssignedIdentities/{throttled_name}$",
        method="PUT",
        status=429,
        code="SubscriptionRequestsThrottled",
        retry_after=1,
    )
    operator = start_operator(
        "observed",
        env=operator_base_env(azure_emulator, ops_kube),
        args=[
            "--verbose",
            "--log-format=json",
            "-n",
            ops_namespace,
            f"--liveness=http://127.0.0.1:{liveness_port}/healthz",
        ],
    )
    operator.wait_ready()
    declare_identity(ops_kube, ops_namespace, resource_group, name=throttled_name)
    missing_group = declare_identity(ops_kube, ops_namespace, f"{resource_group}-missing")
    wait_ready(ops_kube, ops_namespace, ready_name, throttled_name)

    def failed() -> dict[str, Any] | None:
        obj = get_object(ops_kube, ops_namespace, missing_group)
        condition = ready_condition(obj)
        return obj if condition and condition.get("status") == "False" else None

    failing = eventually(failed, timeout=30, what="Ready=False for the missing resource group")

    # Metrics: what happened, by kind, result, operation and status code.
    kind = {"kind": "UserAssignedIdentity"}
    assert operator.metric("azure_identity_operator_reconciles_total", {**kind, "result": "success"}) >= 2
    assert (
        operator.metric(
            "azure_identity_operator_reconciles_total",
            {**kind, "result": "needs_user", "reason": "ResourceGroupNotFound"},
        )
        >= 1
    )
    assert operator.metric("azure_identity_operator_reconcile_duration_seconds_count", kind) >= 3
    assert (
        operator.metric(
            "azure_identity_operator_arm_requests_total", {"operation": WRITE, "status_code": "429"}
        )
        == 1
    )
    assert (
        operator.metric(
            "azure_identity_operator_arm_requests_total", {"operation": WRITE, "status_code": "201"}
        )
        >= 2
    )
    assert (
        operator.metric("azure_identity_operator_arm_throttle_wait_seconds_count", {"operation": WRITE}) == 1
    )
    assert operator.metric("azure_identity_operator_arm_throttle_wait_seconds_sum", {"operation": WRITE}) == 1
    assert operator.metric("azure_identity_operator_objects", {**kind, "ready": "True"}) == 2
    assert (
        operator.metric(
            "azure_identity_operator_objects", {**kind, "ready": "False", "reason": "ResourceGroupNotFound"}
        )
        == 1
    )
    assert operator.metric("azure_identity_operator_build_info") == 1

    # Logs: JSON lines; ARM responses name the object and carry the request ID; nothing secret.
    log = operator.log_text()
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len(entries) == len(log.splitlines()), "every line is a JSON object"
    arm_lines = [entry for entry in entries if entry.get("arm_request_id")]
    assert arm_lines
    for entry in arm_lines:
        assert entry["object"]["namespace"] == ops_namespace, entry
        assert entry["object"]["kind"] == "UserAssignedIdentity", entry
    throttled_lines = [entry for entry in arm_lines if entry.get("status_code") == 429]
    assert [entry["object"]["name"] for entry in throttled_lines] == [throttled_name]
    transitions = [entry for entry in entries if str(entry["message"]).startswith("Ready=")]
    assert {entry["object"]["name"] for entry in transitions} >= {ready_name, throttled_name, missing_group}
    assert azure_emulator.client_secret not in log
    assert not JWT.search(log), "a JWT (an access token) reached the log"
    # The redaction was tested against real traffic: debug lines of the credential and of azure-core's
    # request logging (headers included) are in this log.
    assert any(str(entry["logger"]).startswith("azure.identity") for entry in entries)
    assert any("'Authorization'" in str(entry["message"]) for entry in entries)

    # Argo CD's view of the objects as the operator left them.
    assert argo(get_object(ops_kube, ops_namespace, ready_name)).status == "Healthy"
    assert argo(get_object(ops_kube, ops_namespace, throttled_name)).status == "Healthy"
    degraded = argo(failing)
    assert degraded.status == "Degraded"
    assert degraded.message.startswith("ResourceGroupNotFound: ")
    # Flux's view through the documented health check expressions.
    assert flux(get_object(ops_kube, ops_namespace, ready_name)) == "Current"
    assert flux(get_object(ops_kube, ops_namespace, throttled_name)) == "Current"
    assert flux(failing) == "Failed"
    assert flux(unseen) == "InProgress"

    # Deletion runs outside the reconcile runtime; its ARM lines still name the object.
    ops_kube.kubectl("delete", "-n", ops_namespace, "userassignedidentity", throttled_name, "--timeout=30s")

    def deletion_lines() -> list[dict[str, Any]] | None:
        lines = [json.loads(line) for line in operator.log_text().splitlines() if line.startswith("{")]
        found = [entry for entry in lines if entry.get("http_method") == "DELETE"]
        return found or None

    for entry in eventually(deletion_lines, timeout=15, what="the ARM DELETE line"):
        assert entry["object"] == {
            "kind": "UserAssignedIdentity",
            "namespace": ops_namespace,
            "name": throttled_name,
        }
        assert entry["arm_request_id"]

    # kopf's liveness endpoint runs beside the metrics port.
    with urllib.request.urlopen(f"http://127.0.0.1:{liveness_port}/healthz", timeout=10) as response:
        assert response.status == 200

    # A spec change the operator has not reconciled yet is Progressing, whatever Ready said before.
    operator.stop()
    ops_kube.kubectl(
        "patch",
        "-n",
        ops_namespace,
        "userassignedidentity",
        ready_name,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"tags": {"team": "payments"}}}),
    )
    changed = get_object(ops_kube, ops_namespace, ready_name)
    assert changed["metadata"]["generation"] > changed["status"]["observedGeneration"]
    assert argo(changed).status == "Progressing"
    assert flux(changed) == "InProgress"
