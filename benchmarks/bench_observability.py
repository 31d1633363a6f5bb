"""Cost of observing the operator: formatting (and redacting) a log line, naming an ARM operation, and
rendering /metrics with many objects watched. Run by `make bench`; prints one figure per line."""

from __future__ import annotations

import logging
import time
import uuid

from prometheus_client import generate_latest

from azure_identity_operator.observability import logging as operator_logging
from azure_identity_operator.observability import metrics

ARM_PATH = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/app/federatedIdentityCredentials/web"
)


def per_second(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s ({seconds / count * 1e6:.1f} µs each)"


def bench_log_lines(count: int = 20_000) -> None:
    formatter = operator_logging.JsonFormatter(operator_logging.Redactor(["a-client-secret-value-1234"]))
    record = logging.LogRecord(
        "azure_identity_operator.arm.sdk.session",
        logging.DEBUG,
        __file__,
        1,
        "ARM %s %s -> %s",
        ("PUT", "https://management.azure.com" + ARM_PATH, 201),
        None,
    )
    record.arm_request_id = str(uuid.uuid4())
    record.status_code = 201
    with operator_logging.bind_object("FederatedIdentityCredential", "team-a", "web"):
        started = time.perf_counter()
        for _ in range(count):
            formatter.format(record)
        elapsed = time.perf_counter() - started
    print(f"JSON log line, redacted, with object and ARM request ID: {per_second(count, elapsed)}")


def bench_arm_operation(count: int = 50_000) -> None:
    started = time.perf_counter()
    for _ in range(count):
        metrics.arm_operation("PUT", ARM_PATH)
    print(f"ARM operation name from a request path: {per_second(count, time.perf_counter() - started)}")


def bench_scrape(objects: int = 10_000) -> None:
    recorded = metrics.OperatorMetrics()
    kinds = (
        "UserAssignedIdentity",
        "FederatedIdentityCredential",
        "RoleAssignment",
        "SystemAssignedIdentity",
    )
    for index in range(objects):
        ready = index % 10 != 0
        status = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "Succeeded" if ready else "Throttled",
                }
            ]
        }
        recorded.ready_states.observe(uid=str(index), kind=kinds[index % 4], status=status)
        recorded.record_reconcile(
            kind=kinds[index % 4], ready=ready, retries=not ready, reason="Succeeded", seconds=0.05
        )
        recorded.record_arm_request(
            operation="Microsoft.ManagedIdentity/userAssignedIdentities/read",
            method="GET",
            status_code=200,
            seconds=0.02,
        )
    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        body = generate_latest(recorded.registry)
    elapsed = (time.perf_counter() - started) / rounds
    print(
        f"/metrics with {objects:,} objects watched: {elapsed * 1000:.1f} ms per scrape, {len(body):,} bytes"
    )


def main() -> None:
    bench_log_lines()
    bench_arm_operation()
    bench_scrape()


if __name__ == "__main__":
    main()
