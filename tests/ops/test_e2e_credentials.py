"""The operator's own Azure identity, through DefaultAzureCredential, proven end to end: each way the
environment can give it an identity ends with an object reconciled to Ready by that identity.

Covers: (a) workload identity: a service-account token from the Kubernetes emulator's TokenRequest,
exchanged at the Entra token endpoint against a federated credential of a user-assigned identity that holds
a role on the resource group; (b) managed identity through the App Service endpoint and through IMDS;
(c) a client secret, and a wrong one giving an AuthorizationFailed condition instead of a crash. The log of
each run is checked for the secret, the issued access tokens and the federated token.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.msi.models import FederatedIdentityCredential, Identity

from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo

from .conftest import (
    CLUSTER_ISSUER,
    StartOperator,
    declare_identity,
    get_object,
    operator_base_env,
    ready_condition,
    wait_ready,
)
from .operators import eventually

pytestmark = pytest.mark.e2e

MANAGED_IDENTITY_CONTRIBUTOR = "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59"
AUDIENCE = "api://AzureADTokenExchange"


def operator_identity(
    msi_client: ManagedServiceIdentityClient,
    authorization_client: AuthorizationManagementClient,
    azure_emulator: AzureEmulatorInfo,
    resource_group: str,
) -> Identity:
    """A user-assigned identity allowed to manage identities in `resource_group`, for the operator itself."""
    identity = msi_client.user_assigned_identities.create_or_update(
        resource_group, f"operator-{uuid.uuid4().hex[:6]}", Identity(location="westus")
    )
    scope = f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
    authorization_client.role_assignments.create(
        scope,
        str(uuid.uuid4()),
        {
            "role_definition_id": f"/subscriptions/{azure_emulator.subscription_id}/providers/"
            f"Microsoft.Authorization/roleDefinitions/{MANAGED_IDENTITY_CONTRIBUTOR}",
            "principal_id": identity.principal_id,
            "principal_type": "ServicePrincipal",
        },
    )
    created: Identity = identity
    return created


def test_workload_identity(
    start_operator: StartOperator,
    azure_emulator: AzureEmulatorInfo,
    ops_kube: KubeEmulatorInfo,
    msi_client: ManagedServiceIdentityClient,
    authorization_client: AuthorizationManagementClient,
    resource_group: str,
    ops_namespace: str,
    tmp_path: Path,
) -> None:
    identity = operator_identity(msi_client, authorization_client, azure_emulator, resource_group)
    ops_kube.kubectl("create", "serviceaccount", "-n", ops_namespace, "identity-operator")
    msi_client.federated_identity_credentials.create_or_update(
        resource_group,
        identity.name,
        "kubernetes",
        FederatedIdentityCredential(
            issuer=CLUSTER_ISSUER,
            subject=f"system:serviceaccount:{ops_namespace}:identity-operator",
            audiences=[AUDIENCE],
        ),
    )
    token = ops_kube.kubectl(
        "create", "token", "-n", ops_namespace, "identity-operator", f"--audience={AUDIENCE}"
    ).stdout.strip()
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(token)
    env = operator_base_env(
        azure_emulator,
        ops_kube,
        AZURE_CLIENT_SECRET="",
        AZURE_CLIENT_ID=str(identity.client_id),
        AZURE_FEDERATED_TOKEN_FILE=str(token_file),
    )
    operator = start_operator(
        "workload-identity", env=env, args=["--verbose", "--log-format=json", "-n", ops_namespace]
    )
    name = declare_identity(ops_kube, ops_namespace, resource_group)
    wait_ready(ops_kube, ops_namespace, name)
    created = msi_client.user_assigned_identities.get(resource_group, name)
    assert get_object(ops_kube, ops_namespace, name)["status"]["principalId"] == created.principal_id
    log = operator.log_text()
    assert token not in log
    assert token.split(".")[1] not in log


@pytest.mark.parametrize("endpoint", ["app-service", "imds"])
def test_managed_identity(
    start_operator: StartOperator,
    azure_emulator: AzureEmulatorInfo,
    ops_kube: KubeEmulatorInfo,
    msi_client: ManagedServiceIdentityClient,
    authorization_client: AuthorizationManagementClient,
    resource_group: str,
    ops_namespace: str,
    endpoint: str,
) -> None:
    identity = operator_identity(msi_client, authorization_client, azure_emulator, resource_group)
    where = (
        {
            "IDENTITY_ENDPOINT": azure_emulator.identity_endpoint,
            "IDENTITY_HEADER": azure_emulator.identity_header,
        }
        if endpoint == "app-service"
        else {"AZURE_POD_IDENTITY_AUTHORITY_HOST": azure_emulator.imds_endpoint}
    )
    env = operator_base_env(
        azure_emulator,
        ops_kube,
        AZURE_CLIENT_SECRET="",
        AZURE_CLIENT_ID=str(identity.client_id),
        **where,
    )
    operator = start_operator(
        f"managed-identity-{endpoint}", env=env, args=["--verbose", "-n", ops_namespace]
    )
    name = declare_identity(ops_kube, ops_namespace, resource_group)
    wait_ready(ops_kube, ops_namespace, name)
    assert msi_client.user_assigned_identities.get(resource_group, name).principal_id
    assert azure_emulator.identity_header not in operator.log_text()


def test_client_secret_and_a_wrong_one(
    start_operator: StartOperator,
    azure_emulator: AzureEmulatorInfo,
    ops_kube: KubeEmulatorInfo,
    msi_client: ManagedServiceIdentityClient,
    resource_group: str,
    ops_namespace: str,
) -> None:
    # Two operators at once, each serving its own namespace: one with the right secret, one with a wrong one.
    wrong_namespace = f"{ops_namespace}-wrong"
    ops_kube.kubectl("create", "namespace", wrong_namespace)
    wrong_secret = "wrong-" + azure_emulator.client_secret[::-1]
    good = start_operator(
        "client-secret",
        env=operator_base_env(azure_emulator, ops_kube),
        args=["--verbose", "--log-format=json", "-n", ops_namespace],
    )
    bad = start_operator(
        "wrong-secret",
        env=operator_base_env(azure_emulator, ops_kube, AZURE_CLIENT_SECRET=wrong_secret),
        args=["--verbose", "-n", wrong_namespace],
    )
    name = declare_identity(ops_kube, ops_namespace, resource_group)
    other = declare_identity(ops_kube, wrong_namespace, resource_group)
    wait_ready(ops_kube, ops_namespace, name)
    assert msi_client.user_assigned_identities.get(resource_group, name).client_id

    def failed_condition() -> dict[str, str] | None:
        condition = ready_condition(get_object(ops_kube, wrong_namespace, other))
        return dict(condition) if condition and condition.get("status") == "False" else None

    condition = eventually(failed_condition, timeout=30, what="Ready=False with the wrong secret")
    assert condition["reason"] == "AuthorizationFailed"
    assert "invalid_client AADSTS7000215: Invalid client secret provided." in condition["message"]
    assert bad.process is not None
    assert bad.process.poll() is None, "the operator keeps running"
    assert azure_emulator.client_secret not in good.log_text()
    assert wrong_secret not in bad.log_text()
    assert wrong_secret not in condition["message"]
