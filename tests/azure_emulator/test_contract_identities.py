"""Contract of Microsoft.ManagedIdentity as the real SDK (sync and .aio) and raw HTTPS see it:
user-assigned identities (PUT 201/200, GET, PATCH, DELETE 200/204, lists with nextLink paging, stable and
renewed principal ids) and federated identity credentials (limits, name rules, uniqueness, concurrency).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.msi.aio import ManagedServiceIdentityClient as AsyncManagedServiceIdentityClient

from fixtures.azure_emulator import AzureEmulatorInfo

MSI_VERSION = "2024-11-30"
AUDIENCE = "api://AzureADTokenExchange"


def _identity_path(info: AzureEmulatorInfo, group: str, name: str) -> str:
    return (
        f"/subscriptions/{info.subscription_id}/resourceGroups/{group}"
        f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )


def test_put_creates_with_201_then_replaces_with_200_keeping_principal(
    azure_emulator: AzureEmulatorInfo, resource_group: str
) -> None:
    path = _identity_path(azure_emulator, resource_group, "web-identity")
    created = azure_emulator.raw("PUT", f"{path}?api-version={MSI_VERSION}", {"location": "westus"})
    assert created.status == 201
    assert created.body["id"] == (
        f"/subscriptions/{azure_emulator.subscription_id}/resourcegroups/{resource_group}"
        "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/web-identity"
    )
    assert created.body["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"
    assert created.body["tags"] == {}
    assert created.body["properties"]["tenantId"] == azure_emulator.tenant_id
    assert created.body["properties"]["isolationScope"] == "None"
    assert created.headers["location"] == created.body["id"]

    replaced = azure_emulator.raw(
        "PUT", f"{path}?api-version={MSI_VERSION}", {"location": "westus", "tags": {"team": "web"}}
    )
    assert replaced.status == 200
    assert replaced.body["tags"] == {"team": "web"}
    assert replaced.body["properties"]["principalId"] == created.body["properties"]["principalId"]
    assert replaced.body["properties"]["clientId"] == created.body["properties"]["clientId"]


def test_older_api_version_has_no_isolation_scope(
    azure_emulator: AzureEmulatorInfo, resource_group: str
) -> None:
    path = _identity_path(azure_emulator, resource_group, "old-client")
    created = azure_emulator.raw("PUT", f"{path}?api-version=2023-01-31", {"location": "westus"})
    assert created.status == 201
    assert "isolationScope" not in created.body["properties"]


def test_sdk_lifecycle_get_patch_delete(
    msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    identity = msi_client.user_assigned_identities.create_or_update(
        resource_group, "lifecycle", {"location": "westus", "tags": {"a": "1"}}
    )
    fetched = msi_client.user_assigned_identities.get(
        resource_group, "LIFECYCLE"
    )  # names are case-insensitive
    assert fetched.principal_id == identity.principal_id
    assert fetched.name == "lifecycle"

    patched = msi_client.user_assigned_identities.update(resource_group, "lifecycle", {"tags": {"b": "2"}})
    assert patched.tags == {"b": "2"}
    assert patched.location == "westus"

    msi_client.user_assigned_identities.delete(resource_group, "lifecycle")
    with pytest.raises(ResourceNotFoundError) as raised:
        msi_client.user_assigned_identities.get(resource_group, "lifecycle")
    assert raised.value.error is not None
    assert raised.value.error.code == "ResourceNotFound"


def test_delete_answers_200_empty_then_204(azure_emulator: AzureEmulatorInfo, resource_group: str) -> None:
    path = f"{_identity_path(azure_emulator, resource_group, 'doomed')}?api-version={MSI_VERSION}"
    assert azure_emulator.raw("PUT", path, {"location": "westus"}).status == 201
    first = azure_emulator.raw("DELETE", path)
    assert (first.status, first.body, first.headers["content-length"]) == (200, None, "0")
    assert azure_emulator.raw("DELETE", path).status == 204


def test_recreate_gets_new_principal_and_client_ids(
    msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    first = msi_client.user_assigned_identities.create_or_update(
        resource_group, "again", {"location": "westus"}
    )
    msi_client.user_assigned_identities.delete(resource_group, "again")
    second = msi_client.user_assigned_identities.create_or_update(
        resource_group, "again", {"location": "westus"}
    )
    assert second.principal_id != first.principal_id
    assert second.client_id != first.client_id


def test_lists_page_with_absolute_next_links(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    names = {f"paged-{i}" for i in range(5)}
    for name in names:
        msi_client.user_assigned_identities.create_or_update(resource_group, name, {"location": "westus"})
    azure_emulator.update_settings(page_size=2)
    try:
        raw = azure_emulator.raw(
            "GET",
            f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version={MSI_VERSION}",
        )
        assert len(raw.body["value"]) == 2
        assert raw.body["nextLink"].startswith(f"{azure_emulator.arm_endpoint}/subscriptions/")
        assert "$skiptoken=" in raw.body["nextLink"]
        listed = {i.name for i in msi_client.user_assigned_identities.list_by_resource_group(resource_group)}
        assert listed == names
        in_subscription = {i.name for i in msi_client.user_assigned_identities.list_by_subscription()}
        assert names <= in_subscription
    finally:
        azure_emulator.update_settings(page_size=100)


def test_bad_requests_get_arm_errors(azure_emulator: AzureEmulatorInfo, resource_group: str) -> None:
    base = _identity_path(azure_emulator, resource_group, "x")
    bad_name = azure_emulator.raw("PUT", f"{base}y!?api-version={MSI_VERSION}", {"location": "westus"})
    assert (bad_name.status, bad_name.error_code()) == (400, "InvalidResourceName")
    no_location = azure_emulator.raw("PUT", f"{base}yz?api-version={MSI_VERSION}", {"tags": {}})
    assert (no_location.status, no_location.error_code()) == (400, "LocationRequired")
    not_json = azure_emulator.raw("PUT", f"{base}yz?api-version={MSI_VERSION}", raw_body=b"{not json")
    assert (not_json.status, not_json.error_code()) == (400, "InvalidRequestContent")
    no_version = azure_emulator.raw("GET", f"{base}yz")
    assert (no_version.status, no_version.error_code()) == (400, "MissingApiVersionParameter")
    bad_version = azure_emulator.raw("GET", f"{base}yz?api-version=1999-01-01")
    assert (bad_version.status, bad_version.error_code()) == (400, "NoRegisteredProviderFound")
    missing_group = azure_emulator.raw(
        "GET", f"{_identity_path(azure_emulator, 'no-such-group', 'abc')}?api-version={MSI_VERSION}"
    )
    assert (missing_group.status, missing_group.error_code()) == (404, "ResourceGroupNotFound")
    assert set(missing_group.body["error"]) == {"code", "message"}


def test_location_cannot_change(azure_emulator: AzureEmulatorInfo, resource_group: str) -> None:
    path = f"{_identity_path(azure_emulator, resource_group, 'pinned')}?api-version={MSI_VERSION}"
    assert azure_emulator.raw("PUT", path, {"location": "westus"}).status == 201
    moved = azure_emulator.raw("PUT", path, {"location": "eastus"})
    assert (moved.status, moved.error_code()) == (409, "InvalidResourceLocation")


# --- federated identity credentials -----------------------------------------------------------------------


def _fic(
    issuer: str = "https://issuer.example", subject: str = "system:serviceaccount:ns:sa"
) -> dict[str, object]:
    return {"issuer": issuer, "subject": subject, "audiences": [AUDIENCE]}


def test_fic_lifecycle(msi_client: ManagedServiceIdentityClient, resource_group: str) -> None:
    msi_client.user_assigned_identities.create_or_update(resource_group, "fed", {"location": "westus"})
    fics = msi_client.federated_identity_credentials
    assert list(fics.list(resource_group, "fed")) == []
    created = fics.create_or_update(resource_group, "fed", "github", _fic())
    assert created.type == "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
    assert created.id.endswith("/userAssignedIdentities/fed/federatedIdentityCredentials/github")
    updated = fics.create_or_update(
        resource_group, "fed", "github", _fic(subject="system:serviceaccount:ns:other")
    )
    assert updated.subject == "system:serviceaccount:ns:other"
    assert fics.get(resource_group, "fed", "github").audiences == [AUDIENCE]
    assert [f.name for f in fics.list(resource_group, "fed")] == ["github"]
    fics.delete(resource_group, "fed", "github")
    assert list(fics.list(resource_group, "fed")) == []


def test_fic_status_codes_and_rules(azure_emulator: AzureEmulatorInfo, resource_group: str) -> None:
    identity = _identity_path(azure_emulator, resource_group, "ficrules")
    assert (
        azure_emulator.raw("PUT", f"{identity}?api-version={MSI_VERSION}", {"location": "westus"}).status
        == 201
    )

    def put(name: str, properties: dict[str, object]) -> tuple[int, str | None]:
        response = azure_emulator.raw(
            "PUT",
            f"{identity}/federatedIdentityCredentials/{name}?api-version={MSI_VERSION}",
            {"properties": properties},
        )
        return response.status, response.error_code()

    assert put("first", _fic()) == (201, None)
    assert put("first", _fic()) == (200, None)
    assert put("second", _fic()) == (400, "BadRequest")  # same issuer + subject
    assert put("-leading-dash", _fic(subject="b")) == (400, "BadRequest")
    assert put("ab", _fic(subject="b")) == (400, "BadRequest")
    assert put("missing", {"issuer": "https://i", "subject": "s"}) == (400, "BadRequest")
    delete = f"{identity}/federatedIdentityCredentials/first?api-version={MSI_VERSION}"
    assert azure_emulator.raw("DELETE", delete).status == 200
    assert azure_emulator.raw("DELETE", delete).status == 204
    missing_parent = azure_emulator.raw(
        "PUT",
        f"{_identity_path(azure_emulator, resource_group, 'ghost')}/federatedIdentityCredentials/abc"
        f"?api-version={MSI_VERSION}",
        {"properties": _fic()},
    )
    assert (missing_parent.status, missing_parent.error_code()) == (404, "ResourceNotFound")


def test_at_most_twenty_fics_per_identity(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    msi_client.user_assigned_identities.create_or_update(resource_group, "crowded", {"location": "westus"})
    azure_emulator.update_settings(fic_write_seconds=0)
    try:
        for index in range(20):
            msi_client.federated_identity_credentials.create_or_update(
                resource_group, "crowded", f"fic-{index:02d}", _fic(subject=f"sub-{index}")
            )
        with pytest.raises(HttpResponseError) as raised:
            msi_client.federated_identity_credentials.create_or_update(
                resource_group, "crowded", "fic-20", _fic(subject="sub-20")
            )
        assert raised.value.status_code == 400
    finally:
        azure_emulator.update_settings(fic_write_seconds=0.05)
    # Updating one of the twenty is still allowed.
    msi_client.federated_identity_credentials.create_or_update(
        resource_group, "crowded", "fic-00", _fic(subject="sub-00-new")
    )


async def _concurrent_writes(info: AzureEmulatorInfo, group: str) -> list[object]:
    async with (
        AsyncClientSecretCredential(
            info.tenant_id,
            info.client_id,
            info.client_secret,
            authority=info.authority_host,
            disable_instance_discovery=True,
            connection_verify=info.ca_file,
        ) as credential,
        AsyncManagedServiceIdentityClient(
            credential, info.subscription_id, **info.client_options()
        ) as client,
    ):
        await client.user_assigned_identities.create_or_update(group, "busy", {"location": "westus"})
        writes = [
            client.federated_identity_credentials.create_or_update(
                group, "busy", f"parallel-{i}", _fic(subject=f"s-{i}")
            )
            for i in range(3)
        ]
        return list(await asyncio.gather(*writes, return_exceptions=True))


def test_concurrent_fic_writes_on_one_identity_conflict_with_async_client(
    azure_emulator: AzureEmulatorInfo, resource_group: str
) -> None:
    # A window wide enough that the three parallel writes overlap even on a loaded machine.
    azure_emulator.update_settings(fic_write_seconds=1.0)
    try:
        results = asyncio.run(_concurrent_writes(azure_emulator, resource_group))
    finally:
        azure_emulator.update_settings(fic_write_seconds=0.05)
    errors = [r for r in results if isinstance(r, HttpResponseError)]
    assert len(errors) == 2, results
    for error in errors:
        assert error.status_code == 409
        assert error.error is not None
        assert error.error.code == "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity"
        assert (
            f"/resourcegroups/{resource_group}/providers/microsoft.managedidentity/userassignedidentities/busy'"
            in (error.error.message or "")
        )


def test_deleting_identity_removes_its_fics(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    name = f"short-{uuid.uuid4().hex[:6]}"
    msi_client.user_assigned_identities.create_or_update(resource_group, name, {"location": "westus"})
    msi_client.federated_identity_credentials.create_or_update(resource_group, name, "one", _fic())
    msi_client.user_assigned_identities.delete(resource_group, name)
    msi_client.user_assigned_identities.create_or_update(resource_group, name, {"location": "westus"})
    assert list(msi_client.federated_identity_credentials.list(resource_group, name)) == []


def test_tags_within_arms_limits_round_trip_and_the_rest_are_refused(
    msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    # The operator's ownership marker: a name with '.' and '_', a value with '/' (only names are restricted).
    marker = {"identityoperator.dev_owner": "east/team/payments", "team": "pay"}
    created = msi_client.user_assigned_identities.create_or_update(
        resource_group, "tagged", {"location": "westus", "tags": marker}
    )
    assert created.tags == marker
    full = {f"t{i}": "v" * 256 for i in range(49)} | {"n" * 512: "x"}
    assert msi_client.user_assigned_identities.update(resource_group, "tagged", {"tags": full}).tags == full

    refused = {
        "InvalidTagNameCharacters": {"a/b": "x", "c?d": "y"},
        "InvalidTags": {f"t{i}": "v" for i in range(51)},
        "InvalidTagName": {"n" * 513: "x"},
        "InvalidTagValueLength": {"k": "v" * 257},
    }
    for code, tags in refused.items():
        with pytest.raises(HttpResponseError) as put:
            msi_client.user_assigned_identities.create_or_update(
                resource_group, "refused-tags", {"location": "westus", "tags": tags}
            )
        assert (put.value.status_code, put.value.error.code) == (400, code)  # type: ignore[union-attr]
        with pytest.raises(HttpResponseError) as patch:
            msi_client.user_assigned_identities.update(resource_group, "tagged", {"tags": tags})
        assert patch.value.error.code == code  # type: ignore[union-attr]
    assert msi_client.user_assigned_identities.get(resource_group, "tagged").tags == full, (
        "refusals change nothing"
    )
