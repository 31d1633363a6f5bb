"""Speed and memory of the Azure emulator: start-up to ready file, token issuance, and ARM operations
through the real sync SDK clients (identity PUT/GET, FIC PUT, role assignment PUT, list), plus the
emulator's resident memory afterwards.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from azure.identity import ClientSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

ROUNDS = 200
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def _timed(label: str, rounds: int, operation: Callable[[int], object]) -> None:
    durations = []
    for index in range(rounds):
        started = time.perf_counter()
        operation(index)
        durations.append(time.perf_counter() - started)
    total = sum(durations)
    median_ms = statistics.median(durations) * 1000
    p95_ms = sorted(durations)[int(len(durations) * 0.95) - 1] * 1000
    print(f"{label:<36} {rounds / total:8.0f} ops/s   median {median_ms:6.2f} ms   p95 {p95_ms:6.2f} ms")


def _resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        ready = Path(folder) / "ready.json"
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "azure_emulator", "serve", "--port", "0", "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not ready.exists():
                if process.poll() is not None:
                    raise RuntimeError("the emulator exited during start-up")
                time.sleep(0.01)
            print(f"{'start-up to ready file':<36} {(time.perf_counter() - started) * 1000:8.0f} ms")
            info = json.loads(ready.read_text())
            _run(info)
            print(f"{'emulator resident memory':<36} {_resident_kib(process.pid) / 1024:8.1f} MiB")
        finally:
            process.terminate()
            process.wait(timeout=10)


def _run(info: dict[str, str]) -> None:
    def credential() -> ClientSecretCredential:
        return ClientSecretCredential(
            info["tenant_id"],
            info["client_id"],
            info["client_secret"],
            authority=info["authority_host"],
            disable_instance_discovery=True,
            connection_verify=info["ca_file"],
        )

    # A new credential per round, so each round is a real token request (MSAL caches otherwise).
    _timed(
        "token (client secret)", 50, lambda _: credential().get_token("https://management.azure.com/.default")
    )
    shared = credential()
    options = {"base_url": info["arm_endpoint"], "connection_verify": info["ca_file"]}
    subscription = info["subscription_id"]
    resources = ResourceManagementClient(shared, subscription, **options)
    msi = ManagedServiceIdentityClient(shared, subscription, **options)
    authorization = AuthorizationManagementClient(shared, subscription, **options)
    resources.resource_groups.create_or_update("bench", {"location": "westus"})

    _timed(
        "identity PUT (create)",
        ROUNDS,
        lambda i: msi.user_assigned_identities.create_or_update("bench", f"id-{i}", {"location": "westus"}),
    )
    _timed("identity GET", ROUNDS, lambda i: msi.user_assigned_identities.get("bench", f"id-{i}"))
    _timed(
        "federated credential PUT",
        ROUNDS,
        lambda i: msi.federated_identity_credentials.create_or_update(
            "bench",
            f"id-{i}",
            "cluster",
            {
                "issuer": "https://issuer.example",
                "subject": f"sub-{i}",
                "audiences": ["api://AzureADTokenExchange"],
            },
        ),
    )
    scope = f"/subscriptions/{subscription}/resourceGroups/bench"
    role = f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{READER}"
    principals = [msi.user_assigned_identities.get("bench", f"id-{i}").principal_id for i in range(ROUNDS)]
    _timed(
        "role assignment PUT",
        ROUNDS,
        lambda i: authorization.role_assignments.create(
            scope, str(uuid.uuid4()), {"role_definition_id": role, "principal_id": principals[i]}
        ),
    )
    _timed(
        f"list {ROUNDS} identities (1 page)",
        20,
        lambda _: list(msi.user_assigned_identities.list_by_resource_group("bench")),
    )
    _timed(
        f"list assignments atScope() ({ROUNDS + 1})",
        20,
        lambda _: list(authorization.role_assignments.list_for_scope(scope, filter="atScope()")),
    )


if __name__ == "__main__":
    main()
