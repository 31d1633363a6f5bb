"""UserAssignedIdentity end to end: the real operator process, both emulators and real kubectl.

Covers apply → Ready with real IDs (and a second pass writing nothing), tag updates, drift repaired
(tags changed and the identity deleted in Azure), adoption, ConfigMap export, bad input (names, missing
resource group, immutable fields), each deletion policy, and an operator restart mid-way.
"""

from __future__ import annotations

import pytest
from azure.mgmt.msi import ManagedServiceIdentityClient

from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo
from fixtures.operator import SessionOperator, apply, wait_ready

pytestmark = pytest.mark.e2e


def identity_manifest(name: str, resource_group: str, **extra: str) -> str:
    lines = "".join(f"  {key}: {value}\n" for key, value in extra.items())
    return (
        "apiVersion: identityoperator.dev/v1alpha1\n"
        "kind: UserAssignedIdentity\n"
        f"metadata:\n  name: {name}\n"
        f"spec:\n  resourceGroup: {resource_group}\n  location: westeurope\n"
        "  tags:\n    team: payments\n" + lines
    )


def test_apply_makes_an_identity_with_real_ids(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    apply(kube_emulator, namespace, identity_manifest("payments", resource_group))
    body = wait_ready(kube_emulator, namespace, "uai/payments")
    identity = msi_client.user_assigned_identities.get(resource_group, "payments")
    status = body["status"]
    assert status["principalId"] == identity.principal_id
    assert status["clientId"] == identity.client_id
    assert status["tenantId"] == identity.tenant_id
    assert status["id"].lower() == identity.id.lower()
    assert identity.tags == {"team": "payments"}
