"""Speed of the identity-block reconcilers through the real async SDK adapter against the Azure emulator:
enabling a system-assigned identity, a steady-state pass (read only), attaching and detaching a
user-assigned identity, and many attachments to one resource at once (serialized by the resource lock).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from azure.identity import ClientSecretCredential
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from azure_identity_operator import config
from azure_identity_operator.arm.sdk.resources import SdkResourcePort
from azure_identity_operator.arm.sdk.session import AzureSession
from azure_identity_operator.reconcilers import attachments
from azure_identity_operator.reconcilers import system_assigned_identities as sai

ROUNDS = 40
CONCURRENT_ATTACHMENTS = 20


async def _timed(label: str, rounds: int, operation: Callable[[int], Awaitable[object]]) -> None:
    durations = []
    for index in range(rounds):
        started = time.perf_counter()
        await operation(index)
        durations.append(time.perf_counter() - started)
    median_ms = statistics.median(durations) * 1000
    p95_ms = sorted(durations)[max(0, int(len(durations) * 0.95) - 1)] * 1000
    print(f"{label:<44} median {median_ms:7.2f} ms   p95 {p95_ms:7.2f} ms")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        ready = Path(folder) / "ready.json"
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
            _run(json.loads(ready.read_text()))
        finally:
            process.terminate()
            process.wait(timeout=10)


def _run(info: dict[str, str]) -> None:
    env = {
        "AZURE_CLIENT_ID": info["client_id"],
        "AZURE_CLIENT_SECRET": info["client_secret"],
        "AZURE_TENANT_ID": info["tenant_id"],
        "AZURE_AUTHORITY_HOST": info["authority_host"],
        "AZURE_RESOURCE_MANAGER_ENDPOINT": info["arm_endpoint"],
        "AZURE_SUBSCRIPTION_ID": info["subscription_id"],
        "SSL_CERT_FILE": info["ca_file"],
        "REQUESTS_CA_BUNDLE": info["ca_file"],
    }
    os.environ.update(env)
    credential = ClientSecretCredential(
        info["tenant_id"],
        info["client_id"],
        info["client_secret"],
        authority=info["authority_host"],
        disable_instance_discovery=True,
        connection_verify=info["ca_file"],
    )
    endpoint, ca_file = info["arm_endpoint"], info["ca_file"]
    resources = ResourceManagementClient(
        credential, info["subscription_id"], base_url=endpoint, connection_verify=ca_file
    )
    identities = ManagedServiceIdentityClient(
        credential, info["subscription_id"], base_url=endpoint, connection_verify=ca_file
    )
    group = f"rg-bench-{uuid.uuid4().hex[:8]}"
    resources.resource_groups.create_or_update(group, {"location": "westus"})
    base = f"/subscriptions/{info['subscription_id']}/resourceGroups/{group}/providers"
    apps = [f"{base}/Microsoft.Web/sites/bench-app-{i}" for i in range(ROUNDS)]
    for app in apps:
        resources.resources.begin_create_or_update_by_id(
            app, api_version="2024-04-01", parameters={"location": "westus"}
        ).result()
    vm = f"{base}/Microsoft.Compute/virtualMachines/bench-vm"
    resources.resources.begin_create_or_update_by_id(
        vm, api_version="2024-11-01", parameters={"location": "westus"}
    ).result()
    uais = [
        identities.user_assigned_identities.create_or_update(
            group, f"bench-uai-{i}", {"location": "westus"}
        ).id
        for i in range(CONCURRENT_ATTACHMENTS)
    ]
    asyncio.run(_measure(apps, vm, uais))


async def _measure(apps: list[str], vm: str, uais: list[str]) -> None:
    session = AzureSession(config.Settings.from_env())
    port = SdkResourcePort(session)
    try:
        await sai.reconcile(port, sai.parse_spec({"resourceId": vm}))  # token and provider cache warm-up
        await _timed(
            "SAI enable (GET + PATCH)",
            len(apps),
            lambda i: sai.reconcile(port, sai.parse_spec({"resourceId": apps[i]})),
        )
        await _timed(
            "SAI steady pass (GET only)",
            len(apps),
            lambda i: sai.reconcile(port, sai.parse_spec({"resourceId": apps[i]})),
        )
        await _timed(
            "attach one identity (GET + PATCH)",
            len(apps),
            lambda i: attachments.reconcile_attachments(
                port, identity_id=uais[0], wanted=[apps[i]], recorded=[]
            ),
        )
        await _timed(
            "detach one identity (GET + PATCH)",
            len(apps),
            lambda i: attachments.reconcile_attachments(
                port, identity_id=uais[0], wanted=[], recorded=[apps[i]]
            ),
        )
        started = time.perf_counter()
        await asyncio.gather(
            *(
                attachments.reconcile_attachments(port, identity_id=uai, wanted=[vm], recorded=[])
                for uai in uais
            )
        )
        elapsed = (time.perf_counter() - started) * 1000
        held = await port.get_resource(vm)
        if held is None or len(held.identity.user_assigned) != len(uais):
            raise RuntimeError("an attachment was lost")
        print(f"{f'{len(uais)} attachments to one VM at once':<44} total  {elapsed:7.0f} ms   none lost")
    finally:
        await session.close()
