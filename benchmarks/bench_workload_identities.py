"""What a WorkloadIdentity costs: Azure requests, Kubernetes writes and memory per object, and the time
until many are Ready.

Runs the real operator process on the local stack (`bench_scale.ScaleStack`: both emulators, the operator's
`IDENTITY_OPERATOR_SYNC_INTERVAL=60`, the Kubernetes emulator's audit log in a file), unthrottled on both
sides, so the figures are the operator's own work rather than ARM's pace (`bench_scale` measures that).
It creates N ServiceAccounts, then N WorkloadIdentities at once through the Kubernetes API, each with a
new identity and one role (Reader on one of 10 resource groups), and waits until every WorkloadIdentity is
Ready, polling with one list call a second. Each WorkloadIdentity stands for three parts (an identity, a
credential, a role assignment) and a ServiceAccount annotation, so the least it can cost is three ARM
writes and, in Kubernetes, three creates, one ServiceAccount patch, and the status and finalizer writes of
four objects.

Printed: the time until all are Ready; ARM reads and writes per WorkloadIdentity until then; the
operator's Kubernetes writes per WorkloadIdentity, by verb and resource; over a steady window of 70 s
after (at least one full interval), ARM requests and Kubernetes writes per WorkloadIdentity per interval;
the operator's resident memory per WorkloadIdentity (with its three parts) above its idle figure.

Settings (environment): `BENCH_WI_N` (default 300); `BENCH_WI_STEADY_SECONDS` (default 70); 0 for N skips
the benchmark.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import tempfile
import time
from typing import Any

from benchmarks import process
from benchmarks.bench_scale import (
    APPLY_THREADS,
    GROUP_VERSION,
    LOCATION,
    NAMESPACE,
    RESOURCE_GROUPS,
    SYNC_INTERVAL,
    ArmCounts,
    Audit,
    Azure,
    Kube,
    Table,
    Watcher,
    _breakdown,
    _new_stack,
    _per,
    _say,
    _wait_all_ready,
)

TARGET_CREATION_ARM_WRITES = 3.0
"""One PUT per part: the identity, its credential, its role assignment."""
TARGET_STEADY_ARM_WRITES = 0.0
TARGET_STEADY_KUBE_WRITES = 0.0


def _service_account(index: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": f"wl-{index:05d}"}}


def _workload(index: int, subscription_id: str) -> dict[str, Any]:
    group = RESOURCE_GROUPS[index % len(RESOURCE_GROUPS)]
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "WorkloadIdentity",
        "metadata": {"name": f"wl-{index:05d}", "namespace": NAMESPACE},
        "spec": {
            "serviceAccountName": f"wl-{index:05d}",
            "identity": {"resourceGroup": group, "location": LOCATION},
            "roles": [
                {"role": "Reader", "scope": f"/subscriptions/{subscription_id}/resourceGroups/{group}"}
            ],
        },
    }


def _post_all(kube: Kube, path: str, bodies: list[dict[str, Any]]) -> None:
    with concurrent.futures.ThreadPoolExecutor(APPLY_THREADS) as pool:
        for future in [pool.submit(kube.request, "POST", path, body) for body in bodies]:
            future.result()


def run(n: int, steady_seconds: float) -> None:
    _say(f"{n} WorkloadIdentities, each a new identity, a credential and one role; ARM unthrottled")
    with tempfile.TemporaryDirectory(prefix="bench-wi-") as directory:
        stack = _new_stack(directory, throttle=False)
        try:
            azure, kube = Azure(stack), Kube(stack.kube["server"])
            pid = stack.operator_pid
            idle_rss, _ = process.resident_mib(pid)
            subscription = stack.azure["subscription_id"]
            _post_all(
                kube,
                f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts",
                [_service_account(i) for i in range(n)],
            )
            audit = Audit(stack.audit_path)
            watcher = Watcher(kube, ("workloadidentities",))
            azure.reset_counts()
            audit.skip()
            before = azure.counts()
            started = time.perf_counter()
            _post_all(
                kube,
                f"/apis/{GROUP_VERSION}/namespaces/{NAMESPACE}/workloadidentities",
                [_workload(i, subscription) for i in range(n)],
            )
            elapsed = _wait_all_ready(stack, watcher, n, started, timeout=max(300.0, n * 0.5), interval=1.0)
            ready = azure.counts()
            creation = ArmCounts.between(before, ready)
            creation_kube = audit.take()
            ready_rss, ready_peak = process.resident_mib(pid)

            steady: ArmCounts | None = None
            steady_kube: collections.Counter[str] = collections.Counter()
            window = 0.0
            if elapsed is not None:
                _say(f"  all Ready after {elapsed:.1f} s; steady state for {steady_seconds:.0f} s")
                window_start = time.perf_counter()
                time.sleep(steady_seconds)
                window = time.perf_counter() - window_start
                steady = ArmCounts.between(ready, azure.counts())
                steady_kube = audit.take()
        finally:
            stack.down()

    table = Table(f"WorkloadIdentity cost, N = {n} (each: 3 parts, 1 role), unthrottled")
    table.add("all Ready after", "not all Ready" if elapsed is None else f"{elapsed:.1f} s")
    table.add("ARM reads per WorkloadIdentity, creation", _per(creation.reads, n))
    table.add(
        "ARM writes per WorkloadIdentity, creation",
        _per(creation.writes, n),
        f"{TARGET_CREATION_ARM_WRITES:g}",
        creation.writes / n <= TARGET_CREATION_ARM_WRITES,
    )
    kube_writes = sum(creation_kube.values())
    table.add("Kubernetes writes per WorkloadIdentity, creation", _per(kube_writes, n))
    table.notes.append(f"Kubernetes writes during creation: {_breakdown(creation_kube)}")
    if steady is not None and window:
        intervals = window / SYNC_INTERVAL
        table.add("ARM reads per WorkloadIdentity per interval, steady", _per(steady.reads / intervals, n))
        table.add(
            "ARM writes per WorkloadIdentity per interval, steady",
            _per(steady.writes / intervals, n),
            f"{TARGET_STEADY_ARM_WRITES:g}",
            steady.writes == 0,
        )
        table.add(
            "Kubernetes writes per WorkloadIdentity per interval, steady",
            _per(sum(steady_kube.values()) / intervals, n),
            f"{TARGET_STEADY_KUBE_WRITES:g}",
            not steady_kube,
        )
        table.notes.append(
            f"steady window {window:.0f} s; Kubernetes writes in it: {_breakdown(steady_kube)}"
        )
    table.add("operator memory, idle", f"{idle_rss:.1f} MiB")
    table.add("operator memory, all Ready (peak)", f"{ready_rss:.1f} MiB ({ready_peak:.1f} MiB)")
    table.add("memory per WorkloadIdentity with its parts", f"{(ready_rss - idle_rss) * 1024 / n:.1f} KiB")
    table.print()


def main() -> None:
    n = int(os.environ.get("BENCH_WI_N", "300"))
    if n <= 0:
        return
    run(n, float(os.environ.get("BENCH_WI_STEADY_SECONDS", "70")))


if __name__ == "__main__":
    main()
