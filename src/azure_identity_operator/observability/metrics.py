"""The operator's Prometheus metrics, in one registry served at `/metrics`.

Recorded by the handlers (reconciles, objects by Ready state) and by the ARM pipeline policy (requests,
latency, throttling). Every label has a small, fixed set of values: kinds, results, Ready reasons, HTTP
methods and status codes, and ARM operations named like Azure RBAC actions
(`Microsoft.ManagedIdentity/userAssignedIdentities/write`), never resource names or IDs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

PREFIX = "azure_identity_operator"

ReconcileResult = Literal["success", "retry", "needs_user"]
"""`success`: Ready=True. `retry`: Ready=False while the operator makes progress by itself (a retry, a
dependency it waits for). `needs_user`: Ready=False until a person acts (kstatus `Stalled`), even where
the operator retries slowly to notice the fix."""

# Reconciles are a handful of ARM calls: from a few milliseconds (nothing to do) to tens of seconds
# (throttled, slow directory replication).
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
ARM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
THROTTLE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


def reconcile_result(*, ready: bool, needs_user: bool) -> ReconcileResult:
    if ready:
        return "success"
    return "needs_user" if needs_user else "retry"


class ReadyStates(Collector):
    """The last seen Ready condition of every object the operator watches, exported as a gauge.

    Fed from watch events (every object the operator can see, reconciled or not yet) and forgotten when an
    object is deleted, so the gauge counts what is in the cluster now.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_uid: dict[str, tuple[str, str, str]] = {}

    def observe(self, *, uid: str, kind: str, status: Mapping[str, Any] | None) -> None:
        ready, reason = ready_of(status)
        with self._lock:
            self._by_uid[uid] = (kind, ready, reason)

    def forget(self, uid: str) -> None:
        with self._lock:
            self._by_uid.pop(uid, None)

    def counts(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            values = list(self._by_uid.values())
        counted: dict[tuple[str, str, str], int] = {}
        for key in values:
            counted[key] = counted.get(key, 0) + 1
        return counted

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            f"{PREFIX}_objects",
            "Objects the operator watches, by kind and by the status and reason of their Ready condition "
            "(ready=Unknown, reason='' while an object has not been reconciled yet).",
            labels=["kind", "ready", "reason"],
        )
        for (kind, ready, reason), count in sorted(self.counts().items()):
            family.add_metric([kind, ready, reason], count)
        yield family


class RoleAssignmentCounts(Collector):
    """Role assignments per subscription as the operator last counted them (its drift check lists them
    all), next to the limit Azure enforces: alert before a subscription runs out."""

    def __init__(self) -> None:
        self.counts: Mapping[str, int] = {}
        self.limit = 0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            f"{PREFIX}_role_assignments",
            "Role assignments in a subscription (all of them, not only the operator's), as last listed.",
            labels=["subscription"],
        )
        for subscription, count in sorted(self.counts.items()):
            family.add_metric([subscription], count)
        yield family
        limit = GaugeMetricFamily(
            f"{PREFIX}_role_assignment_limit",
            "Role assignments Azure allows per subscription, as configured "
            "(IDENTITY_OPERATOR_ROLE_ASSIGNMENT_LIMIT).",
        )
        limit.add_metric([], self.limit)
        yield limit


def ready_of(status: Mapping[str, Any] | None) -> tuple[str, str]:
    """(`True`|`False`|`Unknown`, reason) of the Ready condition in a status, `("Unknown", "")` if none."""
    conditions: Iterable[Any] = (status or {}).get("conditions") or ()
    for condition in conditions:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            value = str(condition.get("status") or "Unknown")
            if value not in ("True", "False"):
                value = "Unknown"
            return value, str(condition.get("reason") or "")
    return "Unknown", ""


class OperatorMetrics:
    """Every metric of the operator, registered in `registry` (a fresh one per instance in tests)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self.reconciles = Counter(
            f"{PREFIX}_reconciles_total",
            "Reconciles by kind, result (success, retry, needs_user) and the Ready reason they reported.",
            ["kind", "result", "reason"],
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "Time one reconcile took, from observing Azure to the computed status, by kind and result.",
            ["kind", "result"],
            buckets=RECONCILE_BUCKETS,
            registry=self.registry,
        )
        self.arm_requests = Counter(
            f"{PREFIX}_arm_requests_total",
            "ARM requests by operation (an Azure RBAC action), HTTP method and response status code "
            "('none' when no response arrived). Every attempt counts, retries included.",
            ["operation", "method", "status_code"],
            registry=self.registry,
        )
        self.arm_request_duration = Histogram(
            f"{PREFIX}_arm_request_duration_seconds",
            "Latency of one ARM request attempt, by operation and HTTP method.",
            ["operation", "method"],
            buckets=ARM_BUCKETS,
            registry=self.registry,
        )
        self.arm_throttle_wait = Histogram(
            f"{PREFIX}_arm_throttle_wait_seconds",
            "Waits Azure imposed by throttling (429 with Retry-After), by operation: the count is the number "
            "of throttled responses, the sum the total time asked to wait.",
            ["operation"],
            buckets=THROTTLE_BUCKETS,
            registry=self.registry,
        )
        self.failed_drift_checks = Counter(
            f"{PREFIX}_failed_drift_checks_total",
            "Drift checks that could not observe Azure (throttled, 5xx, timeout): the object kept its last "
            "known good status. By kind and the reason the check would have reported.",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.ready_states = ReadyStates()
        self.registry.register(self.ready_states)
        self.role_assignment_counts = RoleAssignmentCounts()
        self.registry.register(self.role_assignment_counts)
        self.build_info = Gauge(
            f"{PREFIX}_build_info",
            "Always 1; the labels say which version of the operator runs.",
            ["version"],
            registry=self.registry,
        )

    def record_reconcile(
        self, *, kind: str, ready: bool, needs_user: bool, reason: str, seconds: float
    ) -> None:
        result = reconcile_result(ready=ready, needs_user=needs_user)
        self.reconciles.labels(kind=kind, result=result, reason=reason).inc()
        self.reconcile_duration.labels(kind=kind, result=result).observe(seconds)

    def record_failed_drift_check(self, *, kind: str, reason: str) -> None:
        self.failed_drift_checks.labels(kind=kind, reason=reason).inc()

    def record_arm_request(
        self, *, operation: str, method: str, status_code: int | None, seconds: float
    ) -> None:
        code = "none" if status_code is None else str(status_code)
        self.arm_requests.labels(operation=operation, method=method, status_code=code).inc()
        self.arm_request_duration.labels(operation=operation, method=method).observe(seconds)

    def record_throttle(self, *, operation: str, wait_seconds: float) -> None:
        self.arm_throttle_wait.labels(operation=operation).observe(wait_seconds)


_ACTION_BY_METHOD = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}


def arm_operation(method: str, path: str) -> str:
    """The Azure RBAC action an ARM request performs, from its method and URL path.

    `PUT /subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x`
    is `Microsoft.ManagedIdentity/userAssignedIdentities/write`; a nested type keeps every type segment
    (`.../userAssignedIdentities/federatedIdentityCredentials/read`); a POST is `.../action`. Requests
    outside a provider are resource-group and subscription operations (`Microsoft.Resources/...`).
    """
    segments = [segment for segment in path.split("?", 1)[0].split("/") if segment]
    lowered = [segment.lower() for segment in segments]
    action = _ACTION_BY_METHOD.get(method.upper(), "action")
    if "providers" in lowered:
        start = len(lowered) - 1 - lowered[::-1].index("providers")
        rest = segments[start + 1 :]
        if not rest:
            return f"Microsoft.Resources/providers/{action}"
        namespace, names = rest[0], rest[1:]
        # After the namespace, segments alternate type, name, type, name...; POSTs end in an action name.
        if method.upper() == "POST" and len(names) % 2 == 1 and len(names) > 1:
            types = [*names[:-1][0::2], names[-1]]
        else:
            types = names[0::2]
        return "/".join([namespace, *types, action]) if types else f"{namespace}/{action}"
    if "resourcegroups" in lowered:
        return f"Microsoft.Resources/resourceGroups/{action}"
    if "subscriptions" in lowered:
        return f"Microsoft.Resources/subscriptions/{action}"
    return f"unknown/{action}"


OPERATOR = OperatorMetrics()
"""The operator process's metrics; what `/metrics` serves."""
