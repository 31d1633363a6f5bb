"""Speed of the whole operator on user-assigned identities and federated credentials: the real operator
process, both emulators (the local stack) and kubectl.

Figures: apply-to-Ready latency of one identity and of one identity with a credential; time until a batch
of identities, each with a credential, is all Ready; ARM requests per object for that batch; and the ARM
writes during one steady-state drift interval (should be none).
"""

from __future__ import annotations

import json
import ssl
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from local_stack.stack import EXAMPLES_RESOURCE_GROUP, LocalStack

BATCH = 30
SINGLE_ROUNDS = 5
SYNC_INTERVAL = 5.0
NAMESPACE = "default"


def _identity(name: str) -> str:
    return (
        "apiVersion: identityoperator.dev/v1alpha1\nkind: UserAssignedIdentity\n"
        f"metadata:\n  name: {name}\nspec:\n  resourceGroup: {EXAMPLES_RESOURCE_GROUP}\n"
        "  location: westeurope\n"
        "  tags: {bench: 'true'}\n"
    )


def _credential(name: str, identity: str) -> str:
    """A credential and the ServiceAccount it trusts (without it the credential is not Ready)."""
    return (
        f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n---\n"
        "apiVersion: identityoperator.dev/v1alpha1\nkind: FederatedIdentityCredential\n"
        f"metadata:\n  name: {name}\nspec:\n  identityRef: {{name: {identity}}}\n"
        f"  serviceAccountRef: {{name: {name}}}\n"
    )


def _ready_names(stack: LocalStack, resource: str) -> set[str]:
    items = json.loads(stack.kubectl("get", "-n", NAMESPACE, resource, "-o", "json").stdout)["items"]
    return {
        item["metadata"]["name"]
        for item in items
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (item.get("status") or {}).get("conditions") or ()
        )
    }


def _wait_all_ready(stack: LocalStack, resource: str, names: set[str], timeout: float = 120) -> float:
    started = time.perf_counter()
    while not names <= _ready_names(stack, resource):
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{resource}: not all Ready after {timeout}s")
        time.sleep(0.05)
    return time.perf_counter() - started


def _requests(stack: LocalStack) -> dict[str, int]:
    context = ssl.create_default_context(cafile=stack.azure["ca_file"])
    with urllib.request.urlopen(
        f"{stack.azure['control_url']}/requests", context=context, timeout=10
    ) as answer:
        counts: dict[str, int] = json.loads(answer.read())["counts"]
        return counts


def _reset_requests(stack: LocalStack) -> None:
    context = ssl.create_default_context(cafile=stack.azure["ca_file"])
    request = urllib.request.Request(f"{stack.azure['control_url']}/requests", method="DELETE")
    urllib.request.urlopen(request, context=context, timeout=10).close()


def _arm(counts: dict[str, int], *, writes_only: bool) -> int:
    total = 0
    for key, count in counts.items():
        method, _, path = key.partition(" ")
        if not path.lower().startswith("/subscriptions"):
            continue
        if writes_only and method not in ("PUT", "PATCH", "POST", "DELETE"):
            continue
        total += count
    return total


def _apply(stack: LocalStack, manifest: str) -> None:
    stack.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=manifest)


def _latency(stack: LocalStack, label: str, with_credential: bool) -> None:
    durations = []
    for index in range(SINGLE_ROUNDS):
        name = f"single-{'fic' if with_credential else 'uai'}-{index}"
        manifest = _identity(name) + ("---\n" + _credential(name, name) if with_credential else "")
        started = time.perf_counter()
        _apply(stack, manifest)
        _wait_all_ready(
            stack, "federatedidentitycredentials" if with_credential else "userassignedidentities", {name}
        )
        durations.append(time.perf_counter() - started)
    median_ms, max_ms = statistics.median(durations) * 1000, max(durations) * 1000
    print(f"{label:<52} median {median_ms:7.0f} ms   max {max_ms:7.0f} ms")


def _run(stack: LocalStack) -> None:
    _latency(stack, "apply -> Ready, one identity (incl. kubectl)", with_credential=False)
    _latency(stack, "apply -> Ready, identity + credential (incl. kubectl)", with_credential=True)

    _reset_requests(stack)
    names = {f"batch-{index:02}" for index in range(BATCH)}
    manifest = "---\n".join(_identity(name) + "---\n" + _credential(name, name) for name in sorted(names))
    started = time.perf_counter()
    _apply(stack, manifest)
    _wait_all_ready(stack, "userassignedidentities", names)
    _wait_all_ready(stack, "federatedidentitycredentials", names)
    elapsed = time.perf_counter() - started
    counts = _requests(stack)
    print(f"{BATCH} identities + {BATCH} credentials -> all Ready           {elapsed:7.2f} s")
    per_object = _arm(counts, writes_only=False) / (2 * BATCH)
    writes_per_object = _arm(counts, writes_only=True) / (2 * BATCH)
    print(f"ARM requests per object (batch, reads + writes)           {per_object:7.2f}")
    print(f"ARM writes per object (batch)                              {writes_per_object:7.2f}")

    # Steady state: after every object was checked once more, one full interval writes nothing.
    time.sleep(SYNC_INTERVAL * 1.2)
    _reset_requests(stack)
    time.sleep(SYNC_INTERVAL * 1.2)
    counts = _requests(stack)
    objects = 2 * BATCH + SINGLE_ROUNDS + 2 * SINGLE_ROUNDS
    print(
        f"steady state, one drift interval: ARM reads / writes       {_arm(counts, writes_only=False):4d} / "
        f"{_arm(counts, writes_only=True)}  ({objects} objects)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-uai-") as folder:
        stack = LocalStack(workdir=Path(folder), examples=(), sync_interval=SYNC_INTERVAL, say=lambda _: None)
        try:
            stack.up()
            _run(stack)
        finally:
            stack.down()


if __name__ == "__main__":
    main()
