"""What the demo workload can do in Azure once the examples are Ready: workload identity, end to end.

A pod running as the ServiceAccount `billing` (examples/workload-identity.yaml) would find its projected
service-account token in a file and exchange it for an Azure token of the WorkloadIdentity's identity,
trusted through the federated credential the operator made. The Kubernetes emulator keeps such a token in
a file (`--project-token`), so this module does exactly what the pod's Azure SDK would, configured as the
Azure Workload Identity webhook configures it: `WorkloadIdentityCredential` with that file and the client
ID the ServiceAccount is annotated with, then ARM calls with the token. The roles decide what it may read.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.identity import WorkloadIdentityCredential
from azure.mgmt.resource.resources import ResourceManagementClient

DEMO_WORKLOAD = "billing"
"""The ServiceAccount and the WorkloadIdentity of examples/workload-identity.yaml."""
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
KEY_VAULT_API_VERSION = "2024-11-01"


class WorkloadCheckError(RuntimeError):
    """The workload could read something it was granted no role on."""


@dataclasses.dataclass(frozen=True)
class WorkloadCheck:
    """What the workload's token could read (`allowed`) and could not (`refused`, with Azure's code)."""

    client_id: str
    allowed: str
    refused: str
    refused_code: str

    def summary(self) -> str:
        return (
            f"Workload identity, as a pod running as ServiceAccount {DEMO_WORKLOAD} uses it:\n"
            "  its service-account token was exchanged for an Azure token of WorkloadIdentity "
            f"{DEMO_WORKLOAD}'s identity (client ID {self.client_id}, from the ServiceAccount's "
            f"{CLIENT_ID_ANNOTATION})\n"
            f"  it may read {self.allowed} (its role: Reader on the vault)\n"
            f"  it may not read {self.refused} ({self.refused_code}: no role there)"
        )


def check_workload_identity(
    azure: dict[str, Any], client_id: str, token_file: Path, *, timeout: float = 15
) -> WorkloadCheck:
    """Sign in as the workload with its projected token and read one thing it may and one it may not."""
    deadline = time.monotonic() + timeout
    while not token_file.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no projected service-account token at {token_file}")
        time.sleep(0.1)
    options = {"connection_verify": azure["ca_file"]}
    credential = WorkloadIdentityCredential(
        tenant_id=azure["tenant_id"],
        client_id=client_id,
        token_file_path=str(token_file),
        authority=azure["authority_host"],
        # MSAL would otherwise ask login.microsoftonline.com to validate the emulator's authority.
        disable_instance_discovery=True,
        **options,
    )
    subscription = azure["subscription_id"]
    with ResourceManagementClient(
        credential, subscription, base_url=azure["arm_endpoint"], **options
    ) as resources:
        vault_id = (
            f"/subscriptions/{subscription}/resourceGroups/rg-identity-operator-demo"
            "/providers/Microsoft.KeyVault/vaults/kv-demo"
        )
        vault = resources.resources.get_by_id(vault_id, api_version=KEY_VAULT_API_VERSION)
        try:
            resources.resource_groups.get("batch")
        except HttpResponseError as refusal:
            code = (refusal.error.code if refusal.error is not None else None) or str(refusal.status_code)
        else:
            raise WorkloadCheckError("the workload read resource group batch, where it has no role")
    return WorkloadCheck(
        client_id=client_id,
        allowed=f"Key Vault {vault.name}",
        refused="resource group batch",
        refused_code=code,
    )
