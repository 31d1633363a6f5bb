"""The operator's own SDK adapters (`arm.sdk`) against the emulator: what they make of ARM's answers.

Each check runs the adapters in a child process configured only by environment, exactly as the operator
runs (aiohttp reads `SSL_CERT_FILE` once, when it is imported), and prints what the port returned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from typing import Any

from azure.mgmt.msi import ManagedServiceIdentityClient

from fixtures.azure_emulator import AzureEmulatorInfo

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def _run_ports(info: AzureEmulatorInfo, body: str) -> Any:
    """Run `body` (an async function body with the ports `identities`, `authorization`, `resources`) and
    return the JSON it returns."""
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        from azure_identity_operator.arm.errors import ArmError
        from azure_identity_operator.arm.identities import IdentityRef
        from azure_identity_operator.arm.authorization import (
            RoleAssignmentProperties, existing_role_assignment_name,
        )
        from azure_identity_operator.arm.sdk.session import AzureSession
        from azure_identity_operator.arm.sdk.identities import SdkIdentityPort
        from azure_identity_operator.arm.sdk.authorization import SdkAuthorizationPort
        from azure_identity_operator.arm.sdk.resources import SdkResourcePort
        from azure_identity_operator.arm.resources import IdentityPatch
        from azure_identity_operator.config import Settings

        async def check(identities, authorization, resources):
        {body}

        async def main():
            session = AzureSession(Settings.from_env())
            try:
                return await check(
                    SdkIdentityPort(session), SdkAuthorizationPort(session), SdkResourcePort(session)
                )
            finally:
                await session.close()

        print(json.dumps(asyncio.run(main())))
        """
    ).format(body=textwrap.indent(textwrap.dedent(body), " " * 4))
    env = {**os.environ, **info.operator_env()}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_missing_federated_credential_is_absent_whatever_404_code_the_provider_uses(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    msi_client.user_assigned_identities.create_or_update(resource_group, "fic-owner", {"location": "westus"})
    azure_emulator.inject_fault(
        path_regex="federatedIdentityCredentials/absent$",
        method="GET",
        status=404,
        # No public trace shows the code MSI uses for a missing credential: any provider-specific one will do.
        code="FederatedIdentityCredentialNotFound",
        message="Federated identity credential 'absent' was not found.",
    )
    found = _run_ports(
        azure_emulator,
        f"""
        ref = IdentityRef({azure_emulator.subscription_id!r}, {resource_group!r}, "fic-owner")
        first = await identities.get_federated_credential(ref, "absent")
        second = await identities.get_federated_credential(ref, "absent")
        try:
            await identities.get_identity(IdentityRef(ref.subscription_id, "no-such-group", "x"))
            group = None
        except ArmError as error:
            group = error.code
        return [first, second, group]
        """,
    )
    # The injected code and the emulator's own `ResourceNotFound` both mean absent; a missing group does not.
    assert found == [None, None, "ResourceGroupNotFound"]


def test_a_role_assignment_conflict_names_the_existing_assignment(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    identity = msi_client.user_assigned_identities.create_or_update(
        resource_group, "granted", {"location": "westus"}
    )
    scope = f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    named = _run_ports(
        azure_emulator,
        f"""
        grant = RoleAssignmentProperties(
            scope={scope!r},
            role_definition_id="/subscriptions/{azure_emulator.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{READER}",
            principal_id={identity.principal_id!r},
            principal_type="ServicePrincipal",
        )
        await authorization.create_role_assignment({first!r}, grant)
        try:
            await authorization.create_role_assignment({second!r}, grant)
        except ArmError as error:
            return [error.status, error.code, existing_role_assignment_name(error)]
        return None
        """,
    )
    assert named == [409, "RoleAssignmentExists", first]


def test_an_identity_write_carries_the_etag_it_read_and_a_stale_one_is_refused(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    identity = msi_client.user_assigned_identities.create_or_update(
        resource_group, "etag-uai", {"location": "westus"}
    )
    vm = (
        f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
        "/providers/Microsoft.Compute/virtualMachines/etag-vm"
    )
    assert azure_emulator.raw("PUT", f"{vm}?api-version=2024-11-01", {"location": "westus"}).status == 201
    outcome = _run_ports(
        azure_emulator,
        f"""
        read = await resources.get_resource({vm!r})
        patch = IdentityPatch(type="UserAssigned", user_assigned={{{identity.id!r}: True}})
        # Someone else writes the VM between our read and our write.
        await resources.patch_identity(read, IdentityPatch(type="SystemAssigned"))
        try:
            await resources.patch_identity(read, patch)
            stale = None
        except ArmError as error:
            stale = [error.status, error.code]
        fresh = await resources.get_resource({vm!r})
        after = await resources.patch_identity(fresh, patch)
        return [bool(read.etag), stale, [a.id for a in after.identity.user_assigned]]
        """,
    )
    has_etag, stale, attached = outcome
    assert has_etag
    assert stale == [412, "PreconditionFailed"]
    assert [a.lower() for a in attached] == [identity.id.lower()]
