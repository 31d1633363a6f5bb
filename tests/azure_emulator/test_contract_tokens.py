"""Contract of token issuance and ARM authentication: the Entra v2 token endpoint (client secret; client
assertions checked against federated identity credentials), the OpenID configuration MSAL discovers, the
IMDS and App Service managed-identity endpoints, 401s from ARM, and the environment-variable path the
operator uses (async DefaultAzureCredential with SSL_CERT_FILE; sync clients with REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential, WorkloadIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fixtures.azure_emulator import AzureEmulatorInfo, federated_assertion

ARM_SCOPE = "https://management.azure.com/.default"
ISSUER = "https://oidc.cluster.example/issuer"
SUBJECT = "system:serviceaccount:apps:web"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def _token_request(info: AzureEmulatorInfo, form: dict[str, str], tenant: str | None = None) -> Any:
    return info.raw(
        "POST",
        f"/{tenant or info.tenant_id}/oauth2/v2.0/token",
        raw_body=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        token="",
        base=info.authority_host,
    )


def test_openid_configuration_fits_msal(azure_emulator: AzureEmulatorInfo) -> None:
    response = azure_emulator.raw(
        "GET", f"/{azure_emulator.tenant_id}/v2.0/.well-known/openid-configuration", token=""
    )
    assert response.status == 200
    authority = f"{azure_emulator.authority_host}/{azure_emulator.tenant_id}"
    assert response.body["issuer"] == f"{authority}/v2.0"
    assert response.body["token_endpoint"] == f"{authority}/oauth2/v2.0/token"
    assert response.body["authorization_endpoint"] == f"{authority}/oauth2/v2.0/authorize"
    unknown = azure_emulator.raw(
        "GET", "/00000000-0000-0000-0000-000000000000/v2.0/.well-known/openid-configuration", token=""
    )
    assert unknown.status == 400
    assert unknown.body["error"] == "invalid_tenant"


def test_client_secret_token_shape(azure_emulator: AzureEmulatorInfo) -> None:
    response = _token_request(
        azure_emulator,
        {
            "client_id": azure_emulator.client_id,
            "client_secret": azure_emulator.client_secret,
            "grant_type": "client_credentials",
            "scope": ARM_SCOPE,
        },
    )
    assert response.status == 200
    assert response.body["token_type"] == "Bearer"
    assert response.body["expires_in"] == response.body["ext_expires_in"] == 3599
    claims = _claims(response.body["access_token"])
    assert claims["aud"] == "https://management.azure.com/"
    assert claims["tid"] == azure_emulator.tenant_id
    assert claims["appid"] == azure_emulator.client_id


@pytest.mark.parametrize(
    ("change", "status", "error", "aadsts"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        ({"client_id": "00000000-0000-0000-0000-000000000001"}, 400, "unauthorized_client", 700016),
        ({"scope": "https://management.azure.com/user_impersonation"}, 400, "invalid_scope", 1002012),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
    ],
)
def test_token_endpoint_errors(
    azure_emulator: AzureEmulatorInfo, change: dict[str, str], status: int, error: str, aadsts: int
) -> None:
    form = {
        "client_id": azure_emulator.client_id,
        "client_secret": azure_emulator.client_secret,
        "grant_type": "client_credentials",
        "scope": ARM_SCOPE,
        **change,
    }
    response = _token_request(azure_emulator, form)
    assert response.status == status
    assert response.body["error"] == error
    assert response.body["error_codes"] == [aadsts]
    assert response.body["error_description"].startswith(f"AADSTS{aadsts}:")


def test_sdk_surfaces_bad_secret_as_authentication_error(azure_emulator: AzureEmulatorInfo) -> None:
    credential = ClientSecretCredential(
        azure_emulator.tenant_id,
        azure_emulator.client_id,
        "not-the-secret",
        authority=azure_emulator.authority_host,
        disable_instance_discovery=True,
        connection_verify=azure_emulator.ca_file,
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        credential.get_token(ARM_SCOPE)


def test_arm_rejects_missing_bad_and_foreign_tokens(azure_emulator: AzureEmulatorInfo) -> None:
    path = f"/subscriptions/{azure_emulator.subscription_id}/resourcegroups?api-version=2022-09-01"
    missing = azure_emulator.raw("GET", path, token="")
    assert (missing.status, missing.error_code()) == (401, "AuthenticationFailed")
    assert missing.headers["www-authenticate"].startswith("Bearer authorization_uri=")
    garbage = azure_emulator.raw("GET", path, token="not.a.token")
    assert (garbage.status, garbage.error_code()) == (401, "InvalidAuthenticationToken")
    vault_token = _token_request(
        azure_emulator,
        {
            "client_id": azure_emulator.client_id,
            "client_secret": azure_emulator.client_secret,
            "grant_type": "client_credentials",
            "scope": "https://vault.azure.net/.default",
        },
    ).body["access_token"]
    wrong_audience = azure_emulator.raw("GET", path, token=vault_token)
    assert (wrong_audience.status, wrong_audience.error_code()) == (401, "InvalidAuthenticationTokenAudience")
    ok = azure_emulator.raw("GET", path)
    assert ok.status == 200
    legacy_scope_token = _token_request(
        azure_emulator,
        {
            "client_id": azure_emulator.client_id,
            "client_secret": azure_emulator.client_secret,
            "grant_type": "client_credentials",
            "scope": "https://management.core.windows.net//.default",
        },
    ).body["access_token"]
    assert _claims(legacy_scope_token)["aud"] == "https://management.core.windows.net/"
    assert azure_emulator.raw("GET", path, token=legacy_scope_token).status == 200


# --- workload identity federation ---------------------------------------------------------------------------


@pytest.fixture
def federated_identity(msi_client: ManagedServiceIdentityClient, resource_group: str) -> Any:
    identity = msi_client.user_assigned_identities.create_or_update(
        resource_group, "workload", {"location": "westus"}
    )
    msi_client.federated_identity_credentials.create_or_update(
        resource_group,
        "workload",
        "cluster",
        {"issuer": ISSUER, "subject": SUBJECT, "audiences": ["api://AzureADTokenExchange"]},
    )
    return identity


def test_workload_identity_credential_acts_as_the_identity(
    azure_emulator: AzureEmulatorInfo, federated_identity: Any, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(federated_assertion(issuer=ISSUER, subject=SUBJECT))
    credential = WorkloadIdentityCredential(
        tenant_id=azure_emulator.tenant_id,
        client_id=federated_identity.client_id,
        token_file_path=str(token_file),
        authority=azure_emulator.authority_host,
        connection_verify=azure_emulator.ca_file,
    )
    claims = _claims(credential.get_token(ARM_SCOPE).token)
    assert claims["oid"] == federated_identity.principal_id
    assert claims["appid"] == federated_identity.client_id


@pytest.mark.parametrize(
    ("issuer", "subject", "audience", "aadsts"),
    [
        ("https://other-issuer.example", SUBJECT, "api://AzureADTokenExchange", 700211),
        (ISSUER, "system:serviceaccount:apps:WEB", "api://AzureADTokenExchange", 700213),  # case-sensitive
        (ISSUER, SUBJECT, "api://SomethingElse", 700212),
    ],
)
def test_assertion_must_match_a_federated_credential(
    azure_emulator: AzureEmulatorInfo,
    federated_identity: Any,
    issuer: str,
    subject: str,
    audience: str,
    aadsts: int,
) -> None:
    response = _token_request(
        azure_emulator,
        {
            "client_id": federated_identity.client_id,
            "client_assertion": federated_assertion(issuer=issuer, subject=subject, audience=audience),
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "grant_type": "client_credentials",
            "scope": ARM_SCOPE,
        },
    )
    assert response.status == 400
    assert response.body["error_codes"] == [aadsts]


def test_expired_assertion_is_refused(azure_emulator: AzureEmulatorInfo, federated_identity: Any) -> None:
    response = _token_request(
        azure_emulator,
        {
            "client_id": federated_identity.client_id,
            "client_assertion": federated_assertion(issuer=ISSUER, subject=SUBJECT, lifetime=-60),
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "grant_type": "client_credentials",
            "scope": ARM_SCOPE,
        },
    )
    assert (response.status, response.body["error_codes"]) == (400, [700024])


# --- managed identity endpoints -----------------------------------------------------------------------------


def test_imds_endpoint_by_client_id_and_header_rules(
    azure_emulator: AzureEmulatorInfo, federated_identity: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com"
    no_header = azure_emulator.raw("GET", base, token="", base=azure_emulator.imds_endpoint)
    assert (no_header.status, no_header.body["error"]) == (400, "invalid_request")
    unknown = azure_emulator.raw(
        "GET",
        f"{base}&client_id=00000000-0000-0000-0000-000000000000",
        token="",
        headers={"Metadata": "true"},
        base=azure_emulator.imds_endpoint,
    )
    assert (unknown.status, unknown.body["error_description"]) == (400, "Identity not found")
    raw = azure_emulator.raw(
        "GET",
        f"{base}&client_id={federated_identity.client_id}",
        token="",
        headers={"Metadata": "true"},
        base=azure_emulator.imds_endpoint,
    )
    assert raw.status == 200
    assert set(raw.body) >= {
        "access_token",
        "expires_in",
        "expires_on",
        "resource",
        "token_type",
        "client_id",
    }

    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", azure_emulator.imds_endpoint)
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    credential = ManagedIdentityCredential(client_id=federated_identity.client_id)
    assert _claims(credential.get_token(ARM_SCOPE).token)["oid"] == federated_identity.principal_id


def test_app_service_endpoint_and_managed_identity_host(
    azure_emulator: AzureEmulatorInfo,
    resource_group: str,
    federated_identity: Any,
    authorization_client: AuthorizationManagementClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = (
        f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
        "/providers/Microsoft.Web/sites/mi-host"
    )
    created = azure_emulator.raw(
        "PUT",
        f"{site}?api-version=2023-12-01",
        {"location": "westus", "identity": {"type": "SystemAssigned"}},
    )
    system_principal = created.body["identity"]["principalId"]
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_emulator.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", azure_emulator.identity_header)
    azure_emulator.set_managed_identity_host(site)
    try:
        token = ManagedIdentityCredential().get_token(ARM_SCOPE).token
        assert _claims(token)["oid"] == system_principal
        # A UAI not attached to the host is not reachable from it.
        with pytest.raises(ClientAuthenticationError):
            ManagedIdentityCredential(client_id=federated_identity.client_id).get_token(ARM_SCOPE)
    finally:
        azure_emulator.set_managed_identity_host(None)
    wrong_header = azure_emulator.raw(
        "GET",
        "/msi/token?api-version=2019-08-01&resource=https://management.azure.com",
        token="",
        headers={"X-IDENTITY-HEADER": "wrong"},
        base=azure_emulator.imds_endpoint,
    )
    assert wrong_header.status == 401

    # The token acts as that principal: forbidden until it holds a role.
    group_scope = f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
    groups = f"{group_scope}?api-version=2022-09-01"
    assert azure_emulator.raw("GET", groups, token=token).status == 403
    authorization_client.role_assignments.create(
        f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}",
        "2c4b7e1a-0000-4000-8000-" + system_principal[-12:],
        {
            "role_definition_id": f"/subscriptions/{azure_emulator.subscription_id}/providers/"
            f"Microsoft.Authorization/roleDefinitions/{READER}",
            "principal_id": system_principal,
        },
    )
    assert azure_emulator.raw("GET", groups, token=token).status == 200


# --- the operator's own path: environment variables only ----------------------------------------------------

_OPERATOR_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    from azure.identity.aio import DefaultAzureCredential
    from azure.mgmt.msi.aio import ManagedServiceIdentityClient

    async def main():
        async with DefaultAzureCredential() as credential:
            async with ManagedServiceIdentityClient(
                credential, os.environ["AZURE_SUBSCRIPTION_ID"],
                base_url=os.environ["AZURE_RESOURCE_MANAGER_ENDPOINT"],
            ) as client:
                listing = client.user_assigned_identities.list_by_resource_group(sys.argv[1])
                names = [i.name async for i in listing]
        print(",".join(sorted(names)))

    asyncio.run(main())
    """
)

_SYNC_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from azure.identity import ClientSecretCredential
    from azure.mgmt.msi import ManagedServiceIdentityClient

    credential = ClientSecretCredential(
        os.environ["AZURE_TENANT_ID"], os.environ["AZURE_CLIENT_ID"], os.environ["AZURE_CLIENT_SECRET"],
        authority=os.environ["AZURE_AUTHORITY_HOST"], disable_instance_discovery=True,
    )
    client = ManagedServiceIdentityClient(
        credential, os.environ["AZURE_SUBSCRIPTION_ID"],
        base_url=os.environ["AZURE_RESOURCE_MANAGER_ENDPOINT"],
    )
    listing = client.user_assigned_identities.list_by_resource_group(sys.argv[1])
    print(",".join(sorted(i.name for i in listing)))
    """
)


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    prefixes = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_", "SSL_CERT", "REQUESTS_CA")
    base = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**base, **extra}


def _run(script: str, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_operator_env_with_async_default_credential_and_sync_clients(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    msi_client.user_assigned_identities.create_or_update(
        resource_group, "seen-by-env", {"location": "westus"}
    )
    env = _clean_env(azure_emulator.operator_env())
    assert _run(_OPERATOR_SCRIPT, env, resource_group) == "seen-by-env"
    assert _run(_SYNC_SCRIPT, env, resource_group) == "seen-by-env"


def test_operator_env_with_workload_identity(
    azure_emulator: AzureEmulatorInfo,
    federated_identity: Any,
    authorization_client: AuthorizationManagementClient,
    resource_group: str,
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "sa-token"
    token_file.write_text(federated_assertion(issuer=ISSUER, subject=SUBJECT))
    env = azure_emulator.operator_env()
    del env["AZURE_CLIENT_SECRET"]
    env.update(
        {"AZURE_CLIENT_ID": federated_identity.client_id, "AZURE_FEDERATED_TOKEN_FILE": str(token_file)}
    )
    authorization_client.role_assignments.create(
        f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}",
        "5d2f1c3b-0000-4000-8000-" + federated_identity.principal_id[-12:],
        {
            "role_definition_id": f"/subscriptions/{azure_emulator.subscription_id}/providers/"
            f"Microsoft.Authorization/roleDefinitions/{READER}",
            "principal_id": federated_identity.principal_id,
        },
    )
    assert _run(_OPERATOR_SCRIPT, _clean_env(env), resource_group) == "workload"


async def _async_managed_identity_oid(client_id: str | None) -> str:
    async with AsyncManagedIdentityCredential(client_id=client_id) as credential:
        token = await credential.get_token(ARM_SCOPE)
    oid: str = _claims(token.token)["oid"]
    return oid


@pytest.mark.parametrize("endpoint", ["imds", "app-service"])
def test_async_managed_identity_credential_from_environment(
    azure_emulator: AzureEmulatorInfo, federated_identity: Any, monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    if endpoint == "imds":
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", azure_emulator.imds_endpoint)
    else:
        monkeypatch.setenv("IDENTITY_ENDPOINT", azure_emulator.identity_endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", azure_emulator.identity_header)
    oid = asyncio.run(_async_managed_identity_oid(federated_identity.client_id))
    assert oid == federated_identity.principal_id


# --- assertion signatures (opt-in, as Entra checks them) --------------------------------------------------


class _Issuer:
    """A loopback OIDC issuer publishing one RSA key, like a cluster's service-account issuer."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.key.public_key().public_numbers()

        def b64(value: int) -> str:
            raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        jwks = {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": "k1",
                    "alg": "RS256",
                    "use": "sig",
                    "n": b64(numbers.n),
                    "e": b64(numbers.e),
                }
            ]
        }
        issuer_holder: dict[str, str] = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body: dict[str, Any]
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer_holder["url"], "jwks_uri": f"{issuer_holder['url']}/keys"}
                elif self.path == "/keys":
                    body = jwks
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = issuer_holder["url"] = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, claims: dict[str, Any], *, kid: str = "k1", key: rsa.RSAPrivateKey | None = None) -> str:
        def encode(part: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()

        signing_input = f"{encode({'alg': 'RS256', 'typ': 'JWT', 'kid': kid})}.{encode(claims)}"
        signature = (key or self.key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_assertion_signatures_are_checked_when_enabled(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    issuer = _Issuer()
    identity = msi_client.user_assigned_identities.create_or_update(
        resource_group, "signed", {"location": "westus"}
    )
    msi_client.federated_identity_credentials.create_or_update(
        resource_group,
        "signed",
        "cluster",
        {"issuer": issuer.url, "subject": SUBJECT, "audiences": ["api://AzureADTokenExchange"]},
    )
    now = int(time.time())
    claims = {
        "iss": issuer.url,
        "sub": SUBJECT,
        "aud": "api://AzureADTokenExchange",
        "iat": now,
        "exp": now + 600,
    }

    def exchange(assertion: str) -> Any:
        return _token_request(
            azure_emulator,
            {
                "client_id": identity.client_id,
                "client_assertion": assertion,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "grant_type": "client_credentials",
                "scope": ARM_SCOPE,
            },
        )

    azure_emulator.control("PUT", "settings", {"verifyAssertionSignatures": True})
    try:
        assert exchange(issuer.sign(claims)).status == 200
        impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = exchange(issuer.sign(claims, key=impostor))
        assert (forged.status, forged.body["error_codes"]) == (400, [50013])
        unknown_key = exchange(issuer.sign(claims, kid="rotated-away"))
        assert unknown_key.body["error_codes"] == [50013]
        unsigned = exchange(federated_assertion(issuer=issuer.url, subject=SUBJECT))
        assert unsigned.body["error_codes"] == [50013]
        issuer.close()
        msi_client.federated_identity_credentials.create_or_update(
            resource_group,
            "signed",
            "gone",
            {"issuer": f"{issuer.url}/gone", "subject": SUBJECT, "audiences": ["api://AzureADTokenExchange"]},
        )
        unreachable = exchange(issuer.sign({**claims, "iss": f"{issuer.url}/gone"}))
        assert unreachable.body["error_codes"] == [50166]
    finally:
        azure_emulator.control("PUT", "settings", {"verifyAssertionSignatures": False})
        issuer.close()
    # Off again: claims alone decide, as in the rest of this suite.
    assert exchange(federated_assertion(issuer=issuer.url, subject=SUBJECT)).status == 200
