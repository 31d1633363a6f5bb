"""Operator settings from the environment: defaults, parsing, and errors that name the variable."""

import pytest

from azure_identity_operator.config import ConfigError, Settings

SUB = "11111111-2222-3333-4444-555555555555"


def test_defaults_point_at_public_azure() -> None:
    settings = Settings.from_env({"AZURE_SUBSCRIPTION_ID": SUB})
    assert settings.resource_manager_endpoint == "https://management.azure.com"
    assert settings.credential_scope == "https://management.azure.com/.default"
    assert settings.namespaces == ()
    assert settings.sync_interval == 600


def test_reads_every_variable() -> None:
    settings = Settings.from_env(
        {
            "AZURE_SUBSCRIPTION_ID": SUB,
            "AZURE_TENANT_ID": "t",
            "AZURE_RESOURCE_MANAGER_ENDPOINT": "https://127.0.0.1:8443/",
            "AZURE_AUTHORITY_HOST": "https://127.0.0.1:8443/",
            "IDENTITY_OPERATOR_OIDC_ISSUER": "https://issuer",
            "IDENTITY_OPERATOR_SYNC_INTERVAL": "2.5",
            "IDENTITY_OPERATOR_NAMESPACES": "a, b,,",
            "IDENTITY_OPERATOR_LOG_FORMAT": "JSON",
        }
    )
    assert settings.resource_manager_endpoint == "https://127.0.0.1:8443"
    assert settings.authority_host == "https://127.0.0.1:8443"
    assert settings.sync_interval == 2.5
    assert settings.namespaces == ("a", "b")
    assert settings.log_format == "json"
    assert settings.oidc_issuer == "https://issuer"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "AZURE_SUBSCRIPTION_ID"),
        ({"AZURE_SUBSCRIPTION_ID": "my-subscription"}, "AZURE_SUBSCRIPTION_ID"),
        (
            {"AZURE_SUBSCRIPTION_ID": SUB, "IDENTITY_OPERATOR_SYNC_INTERVAL": "soon"},
            "IDENTITY_OPERATOR_SYNC_INTERVAL",
        ),
        (
            {"AZURE_SUBSCRIPTION_ID": SUB, "IDENTITY_OPERATOR_SYNC_INTERVAL": "-1"},
            "IDENTITY_OPERATOR_SYNC_INTERVAL",
        ),
        (
            {"AZURE_SUBSCRIPTION_ID": SUB, "IDENTITY_OPERATOR_LOG_FORMAT": "xml"},
            "IDENTITY_OPERATOR_LOG_FORMAT",
        ),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)
