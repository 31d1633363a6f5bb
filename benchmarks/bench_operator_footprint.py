"""Memory and CPU of the operator process, the figures behind the Deployment's resource requests and limits
(deploy/base/deployment.yaml).

Runs the real operator process on the local stack (both emulators), measures its resident memory idle,
then after a batch of user-assigned identities is Ready and after a drift-check interval over them, with
the CPU time it used for each step.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from benchmarks import process
from local_stack.stack import EXAMPLES_RESOURCE_GROUP, LocalStack

BATCH = 200
SYNC_INTERVAL = 5.0
NAMESPACE = "default"


def _identities(count: int) -> str:
    return "".join(
        "---\napiVersion: identityoperator.dev/v1alpha1\nkind: UserAssignedIdentity\n"
        f"metadata:\n  name: footprint-{index:04d}\nspec:\n  resourceGroup: {EXAMPLES_RESOURCE_GROUP}\n"
        "  location: westeurope\n"
        for index in range(count)
    )


def _ready_count(stack: LocalStack) -> int:
    items = json.loads(stack.kubectl("get", "-n", NAMESPACE, "uai", "-o", "json").stdout)["items"]
    return sum(
        1
        for item in items
        if any(
            condition.get("type") == "Ready" and condition.get("status") == "True"
            for condition in (item.get("status") or {}).get("conditions") or ()
        )
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as directory:
        stack = LocalStack(Path(directory), examples=(), sync_interval=SYNC_INTERVAL, say=lambda _: None)
        stack.up()
        try:
            (operator,) = [child for child in stack.children if child.name == "operator"]
            pid = operator.process.pid
            time.sleep(2)  # let start-up settle
            idle, _ = process.resident_mib(pid)
            cpu_start = process.cpu_seconds(pid)
            print(f"{'operator resident memory, idle':<48} {idle:8.1f} MiB")

            started = time.perf_counter()
            stack.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=_identities(BATCH))
            while _ready_count(stack) < BATCH:
                if time.perf_counter() - started > 300:
                    raise RuntimeError(f"{BATCH} identities not Ready after 300 s")
                time.sleep(0.5)
            elapsed = time.perf_counter() - started
            cpu_batch = process.cpu_seconds(pid) - cpu_start
            current, peak = process.resident_mib(pid)
            print(f"{f'{BATCH} identities to Ready':<48} {elapsed:8.1f} s")
            print(
                f"{'  operator CPU time for them':<48} {cpu_batch:8.1f} s ({cpu_batch / elapsed:.2f} cores)"
            )
            print(f"{f'operator resident memory, {BATCH} objects':<48} {current:8.1f} MiB (peak {peak:.1f})")

            cpu_before = process.cpu_seconds(pid)
            time.sleep(SYNC_INTERVAL * 2)
            cpu_drift = process.cpu_seconds(pid) - cpu_before
            current, peak = process.resident_mib(pid)
            print(
                f"{f'  drift checks of {BATCH} objects, {SYNC_INTERVAL * 2:.0f} s':<48} "
                f"{cpu_drift:8.1f} s CPU ({cpu_drift / (SYNC_INTERVAL * 2):.2f} cores)"
            )
            print(f"{'operator resident memory after drift checks':<48} {current:8.1f} MiB (peak {peak:.1f})")
        finally:
            stack.down()


if __name__ == "__main__":
    main()
