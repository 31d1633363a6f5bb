"""Which token scope and Entra authority the operator's Azure session uses for each Azure cloud."""

import asyncio

import pytest

from azure_identity_operator.arm.sdk import session
from azure_identity_operator.config import Settings

SUB = "11111111-2222-3333-4444-555555555555"


def _settings(**env: str) -> Settings:
    return Settings.from_env({"AZURE_SUBSCRIPTION_ID": SUB, **env})


@pytest.mark.parametrize(
    ("endpoint", "scope", "authority"),
    [
        (
            "https://management.azure.com",
            "https://management.azure.com/.default",
            "https://login.microsoftonline.com",
        ),
        (
            "https://management.usgovcloudapi.net/",
            "https://management.core.usgovcloudapi.net/.default",
            "https://login.microsoftonline.us",
        ),
        (
            "https://management.chinacloudapi.cn",
            "https://management.chinacloudapi.cn/.default",
            "https://login.chinacloudapi.cn",
        ),
    ],
)
def test_a_sovereign_endpoint_alone_picks_its_cloud_s_audience_and_authority(
    endpoint: str, scope: str, authority: str
) -> None:
    settings = _settings(AZURE_RESOURCE_MANAGER_ENDPOINT=endpoint)
    assert session.credential_scope(settings) == scope
    assert session.authority_host(settings) == authority


def test_configured_audience_and_authority_win_over_the_endpoint_s_cloud() -> None:
    settings = _settings(
        AZURE_RESOURCE_MANAGER_ENDPOINT="https://management.usgovcloudapi.net",
        AZURE_RESOURCE_MANAGER_AUDIENCE="https://management.usgovcloudapi.net/",
        AZURE_AUTHORITY_HOST="https://login.example.test/",
    )
    assert session.credential_scope(settings) == "https://management.usgovcloudapi.net/.default"
    assert session.authority_host(settings) == "https://login.example.test"


def test_an_unknown_endpoint_keeps_the_configured_audience_and_leaves_the_authority_to_the_sdk() -> None:
    settings = _settings(AZURE_RESOURCE_MANAGER_ENDPOINT="https://127.0.0.1:8443")
    assert session.credential_scope(settings) == "https://management.azure.com/.default"
    assert session.authority_host(settings) is None


def test_the_session_s_clients_ask_for_tokens_of_the_endpoint_s_cloud() -> None:
    from azure.mgmt.msi.aio import ManagedServiceIdentityClient

    async def scopes() -> list[str]:
        azure = session.AzureSession(
            _settings(AZURE_RESOURCE_MANAGER_ENDPOINT="https://management.chinacloudapi.cn")
        )
        try:
            client = azure.client(ManagedServiceIdentityClient, SUB)
            return list(client._config.credential_scopes)
        finally:
            await azure.close()

    assert asyncio.run(scopes()) == ["https://management.chinacloudapi.cn/.default"]
