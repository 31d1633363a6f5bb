"""The Azure side of the demo: the subscription, resource groups and resources that `examples/` refer to.

In a real subscription these already exist, owned by whoever deployed the workloads: the operator only
manages identities and role assignments on top of them. `make run` therefore creates them in the Azure
emulator before the examples are applied, through ARM with the same requests a user's own deployment
would send, so the examples work exactly as written. A resource the emulator's saved state already holds
(a second run on one `--workdir`) is left as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

DEMO_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
"""The subscription the examples name: the local stack starts the emulator with it (`--subscription-id`)."""
DEMO_LOCATION = "westeurope"
EXAMPLES_RESOURCE_GROUP = "rg-identity-operator-demo"
"""The resource group of examples/user-assigned-identity.yaml and of the Key Vault the roles are on."""

RESOURCE_GROUPS_API_VERSION = "2022-09-01"


@dataclasses.dataclass(frozen=True)
class AzureResource:
    """One ARM resource to create: its path under the subscription, the api-version and the body."""

    path: str
    api_version: str
    body: Mapping[str, Any]

    def resource_id(self, subscription_id: str) -> str:
        return f"/subscriptions/{subscription_id}{self.path}"

    @property
    def description(self) -> str:
        """`<type> <name>` for the progress output, e.g. `Microsoft.Compute/virtualMachines batch-vm`."""
        segments = self.path.strip("/").split("/")
        if len(segments) == 2:
            return f"resource group {segments[1]}"
        provider_at = segments.index("providers")
        rest = segments[provider_at + 1 :]
        namespace, pairs = rest[0], rest[1:]
        types = "/".join(pairs[0::2])
        names = "/".join(pairs[1::2])
        return f"{namespace}/{types} {names}"


def _group(name: str) -> AzureResource:
    return AzureResource(f"/resourceGroups/{name}", RESOURCE_GROUPS_API_VERSION, {"location": DEMO_LOCATION})


def _resource(group: str, provider_path: str, api_version: str, **body: Any) -> AzureResource:
    return AzureResource(
        f"/resourceGroups/{group}/providers/{provider_path}",
        api_version,
        {"location": DEMO_LOCATION, **body},
    )


def demo_estate(tenant_id: str) -> tuple[AzureResource, ...]:
    """Everything the examples name, parents before children, in the order a deployment would create it."""
    return (
        # examples/user-assigned-identity.yaml, federated-identity-credential.yaml, role-assignment.yaml
        _group(EXAMPLES_RESOURCE_GROUP),
        _resource(
            EXAMPLES_RESOURCE_GROUP,
            "Microsoft.KeyVault/vaults/kv-demo",
            "2024-11-01",
            properties={
                "tenantId": tenant_id,
                "sku": {"family": "A", "name": "standard"},
                "enableRbacAuthorization": True,
            },
        ),
        # examples/system-assigned-identity.yaml: an App Service app and its staging slot
        _group("storefront"),
        _resource("storefront", "Microsoft.Web/sites/storefront", "2024-04-01", kind="app"),
        _resource("storefront", "Microsoft.Web/sites/storefront/slots/staging", "2024-04-01", kind="app"),
        # examples/system-assigned-and-attached-identities.yaml: a VM, a dashboard app, a storage account
        _group("batch"),
        _resource(
            "batch",
            "Microsoft.Compute/virtualMachines/batch-vm",
            "2024-11-01",
            properties={"hardwareProfile": {"vmSize": "Standard_B2s"}},
        ),
        _resource("batch", "Microsoft.Web/sites/batch-dashboard", "2024-04-01", kind="app"),
        _resource(
            "batch",
            "Microsoft.Storage/storageAccounts/stbatchreports",
            "2024-01-01",
            kind="StorageV2",
            sku={"name": "Standard_LRS"},
        ),
    )
