"""The message a refused or missing credential puts in the Ready condition: Entra's own reason when a
credential was refused, else the credentials DefaultAzureCredential tried; one line, bounded, no secret."""

from __future__ import annotations

import asyncio

import pytest
from azure.core.exceptions import ClientAuthenticationError

from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.arm.sdk.session import translated_errors

REFUSED = (
    "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
    "Attempted credentials:\n"
    "\tEnvironmentCredential: Microsoft Entra ID error '(invalid_client) AADSTS7000215: Invalid client "
    "secret provided. Ensure the secret being sent in the request is the client secret value. Trace ID: 1'\n"
    'Content: {"error": "invalid_client"}\n'
    "To mitigate this issue, please refer to the troubleshooting guidelines here at https://aka.ms/x."
)
UNAVAILABLE = (
    "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
    "Attempted credentials:\n"
    "\tEnvironmentCredential: EnvironmentCredential authentication unavailable. Environment variables "
    "are not fully configured.\n"
    "\tManagedIdentityCredential: ManagedIdentityCredential authentication unavailable, no response from the "
    "IMDS endpoint.\n"
    "To mitigate this issue, please refer to the troubleshooting guidelines here at https://aka.ms/x."
)


def translate(message: str) -> ArmError:
    async def fail() -> None:
        async with translated_errors():
            raise ClientAuthenticationError(message=message)

    with pytest.raises(ArmError) as raised:
        asyncio.run(fail())
    return raised.value


def test_a_refused_credential_reports_entras_reason() -> None:
    error = translate(REFUSED)
    assert error.code == "AuthenticationFailed"
    assert error.status is None
    assert error.message == (
        "Microsoft Entra ID refused the operator's credential: invalid_client AADSTS7000215: Invalid client "
        "secret provided."
    )


def test_no_usable_credential_lists_what_was_tried() -> None:
    message = translate(UNAVAILABLE).message
    assert "\n" not in message
    assert message.startswith("DefaultAzureCredential failed to retrieve a token")
    assert "EnvironmentCredential: EnvironmentCredential authentication unavailable." in message
    assert "ManagedIdentityCredential: ManagedIdentityCredential authentication unavailable" in message
    assert "To mitigate" not in message
    assert len(translate(UNAVAILABLE * 20).message) <= 600


def test_no_usable_credential_is_transient_and_a_refused_one_is_not() -> None:
    """A projected token not mounted yet heals by itself; a refused secret needs a person."""
    from azure_identity_operator.arm.errors import ErrorClass

    assert translate(UNAVAILABLE).code == "CredentialUnavailable"
    assert translate(UNAVAILABLE).error_class is ErrorClass.RETRYABLE
    assert translate(REFUSED).error_class is ErrorClass.NEEDS_USER
