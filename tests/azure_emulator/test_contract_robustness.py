"""Bad requests never crash the emulator: a sweep of malformed paths, methods, queries and bodies across
every route family must get an Azure-shaped error (or a success), never a 500 or a non-JSON body; and
tokens the emulator did not issue, issued for another tenant, or expired are refused with ARM's 401s.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import itertools
import json
import ssl
import time
import urllib.parse
from pathlib import Path

import pytest

from fixtures.azure_emulator import AzureEmulatorInfo

_PATHS = (
    "/subscriptions/{s}",
    "/subscriptions/{s}/providers",
    "/subscriptions/{s}/providers/Microsoft.Compute",
    "/subscriptions/{s}/providers/Microsoft.Nope",
    "/subscriptions/{s}/providers/Microsoft.Compute/register",
    "/subscriptions/{s}/providers/Microsoft.Compute/locations/westus/operations/abc",
    "/subscriptions/{s}/providers/Microsoft.ManagedIdentity/userAssignedIdentities",
    "/subscriptions/{s}/resourcegroups",
    "/subscriptions/{s}/resourcegroups/{g}",
    "/subscriptions/{s}/resourcegroups/{g}/resources",
    "/subscriptions/{s}/resourcegroups/{g}/providers",
    "/subscriptions/{s}/resourcegroups/{g}/providers/Microsoft.ManagedIdentity",
    "/subscriptions/{s}/resourcegroups/{g}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x1y",
    "/subscriptions/{s}/resourcegroups/{g}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x1y"
    "/federatedIdentityCredentials",
    "/subscriptions/{s}/resourcegroups/{g}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x1y"
    "/federatedIdentityCredentials/f1",
    "/subscriptions/{s}/resourcegroups/{g}/providers/Microsoft.Web/sites/app/slots",
    "/subscriptions/{s}/resourcegroups/{g}/providers/Microsoft.Web/sites/app/slots/s1/extra",
    "/subscriptions/{s}/resourcegroups/{g}/providers/Microsoft.Compute/virtualMachines/vm"
    "/providers/Microsoft.ManagedIdentity/identities/default",
    "/subscriptions/{s}/resourcegroups/{g}/providers/Microsoft.Authorization/roleAssignments",
    "/subscriptions/{s}/resourcegroups/{g}/providers/Microsoft.Authorization/roleAssignments/"
    "0b9d3f6e-93a4-4f44-9d0a-5d3c2b1a0f9e",
    "/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions",
    "/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/not-a-guid",
    "/subscriptions/{s}/providers/Microsoft.Authorization/permissions",
    "/providers/Microsoft.Authorization/roleAssignments",
    "/providers/Microsoft.ManagedIdentity/operations",
    "/providers/Microsoft.Management/managementGroups/mg/providers/Microsoft.Authorization/roleAssignments",
    "/subscriptions",
    "/providers",
)
_QUERIES = (
    "",
    "?api-version=2024-11-30",
    "?api-version=2022-04-01&$filter=atScope()%20or%20x",
)
_BODIES: tuple[object, ...] = (
    None,
    {"location": 5, "tags": [1], "properties": [], "identity": {"type": 3}},
    {"properties": {"principalId": None, "roleDefinitionId": 7, "issuer": [], "audiences": "a"}},
)


def test_no_request_crashes_the_emulator(azure_emulator: AzureEmulatorInfo, resource_group: str) -> None:
    # One kept-alive connection: a TLS handshake per request would dominate the sweep's time.
    endpoint = urllib.parse.urlsplit(azure_emulator.arm_endpoint)
    connection = http.client.HTTPSConnection(
        endpoint.hostname or "",
        endpoint.port,
        context=ssl.create_default_context(cafile=azure_emulator.ca_file),
    )
    token = azure_emulator.bearer_token()
    failures = []
    try:
        for path, query, method, body in itertools.product(
            _PATHS, _QUERIES, ("GET", "PUT", "PATCH", "DELETE", "POST", "HEAD"), _BODIES
        ):
            if method in ("GET", "DELETE", "HEAD") and body is not None:
                continue
            url = path.format(s=azure_emulator.subscription_id, g=resource_group) + query
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            connection.request(method, url, body=payload, headers=headers)
            response = connection.getresponse()
            content = response.read()
            if response.status >= 500:
                failures.append((method, url, body, response.status, content))
            elif response.status >= 400 and method != "HEAD":
                error = json.loads(content).get("error")
                if not (isinstance(error, dict) and error.get("code") and error.get("message")):
                    failures.append((method, url, body, response.status, content))
    finally:
        connection.close()
    assert failures == []


def _sign(info: AzureEmulatorInfo, claims: dict[str, object]) -> str:
    key = (Path(info.ca_file).parent / "token-signing.key").read_bytes()

    def encode(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = encode(json.dumps(claims).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{encode(signature)}"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"exp": 1_000}, "ExpiredAuthenticationToken"),
        ({"tid": "00000000-0000-0000-0000-0000000000aa"}, "InvalidAuthenticationTokenTenant"),
        ({"aud": "https://graph.microsoft.com"}, "InvalidAuthenticationTokenAudience"),
    ],
)
def test_tokens_are_checked_for_expiry_tenant_and_audience(
    azure_emulator: AzureEmulatorInfo, change: dict[str, object], code: str
) -> None:
    claims: dict[str, object] = {
        "aud": "https://management.azure.com/",
        "tid": azure_emulator.tenant_id,
        "oid": "00000000-0000-0000-0000-0000000000bb",
        "appid": "00000000-0000-0000-0000-0000000000cc",
        "exp": int(time.time()) + 600,
        **change,
    }
    response = azure_emulator.raw(
        "GET",
        f"/subscriptions/{azure_emulator.subscription_id}?api-version=2022-09-01",
        token=_sign(azure_emulator, claims),
    )
    assert (response.status, response.error_code()) == (401, code)
    forged = _sign(azure_emulator, claims)[:-4] + "AAAA"
    rejected = azure_emulator.raw(
        "GET", f"/subscriptions/{azure_emulator.subscription_id}?api-version=2022-09-01", token=forged
    )
    assert (rejected.status, rejected.error_code()) == (401, "InvalidAuthenticationToken")


def test_authority_and_managed_identity_endpoints_never_crash(azure_emulator: AzureEmulatorInfo) -> None:
    tenant = azure_emulator.tenant_id
    authority_requests: list[tuple[str, str, bytes | None, dict[str, str]]] = [
        ("POST", f"/{tenant}/oauth2/v2.0/token", b'{"json": true}', {"Content-Type": "application/json"}),
        (
            "POST",
            f"/{tenant}/oauth2/v2.0/token",
            b"\xff\xfe",
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        ("POST", f"/{tenant}/oauth2/v2.0/token", b"client_assertion=x&client_id=y", {}),
        ("GET", f"/{tenant}/oauth2/v2.0/token", None, {}),
        ("GET", "/not-a-tenant/v2.0/.well-known/openid-configuration", None, {}),
        ("GET", "/", None, {}),
        ("DELETE", "/common/discovery/instance", None, {}),
    ]
    for method, path, body, headers in authority_requests:
        response = azure_emulator.raw(method, path, token="", raw_body=body, headers=headers)
        assert 400 <= response.status < 500, (method, path, response.status, response.body)
        assert isinstance(response.body, dict)
    managed_identity_requests = [
        "/metadata/identity/oauth2/token",
        "/metadata/identity/oauth2/token?api-version=2018-02-01",
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r&msi_res_id=%2Fnot%2Fan%2Fid",
        "/msi/token?api-version=2019-08-01&resource=r&object_id=nope",
        "/elsewhere",
    ]
    for path in managed_identity_requests:
        response = azure_emulator.raw(
            "GET",
            path,
            token="",
            headers={"Metadata": "true", "X-IDENTITY-HEADER": azure_emulator.identity_header},
            base=azure_emulator.imds_endpoint,
        )
        assert 400 <= response.status < 500, (path, response.status, response.body)
        assert isinstance(response.body, dict)


def test_oversized_body_gets_an_arm_error(azure_emulator: AzureEmulatorInfo, resource_group: str) -> None:
    path = (
        f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
        "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/big?api-version=2024-11-30"
    )
    response = azure_emulator.raw("PUT", path, raw_body=b'{"tags": "' + b"x" * (5 * 1024 * 1024) + b'"}')
    assert (response.status, response.error_code()) == (413, "RequestEntityTooLarge")
