"""Signature checks of workload-identity client assertions, as Entra makes them (off unless enabled).

Entra trusts an assertion only once its signature verifies against the issuer's published keys: it reads
`{issuer}/.well-known/openid-configuration`, follows `jwks_uri`, and picks the key named by the token's
`kid`. This does the same for RS256 tokens, caching each issuer's keys for five minutes. Issuers on
loopback may use plain HTTP or a private CA (`--trusted-ca-file`), so a local Kubernetes emulator can act
as the cluster's OIDC issuer.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from azure_emulator.errors import EntraError

_CACHE_SECONDS = 300.0


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _failed(reason: str) -> EntraError:
    return EntraError(
        400, "invalid_client", 50013, f"Assertion failed signature validation. [Reason - {reason}]"
    )


def _unreachable(issuer: str) -> EntraError:
    return EntraError(
        400,
        "invalid_request",
        50166,
        f"Request to External OIDC endpoint failed. The issuer '{issuer}' did not publish its signing keys.",
    )


class AssertionVerifier:
    def __init__(self, trusted_ca_file: Path | None = None) -> None:
        self._ssl = ssl.create_default_context()
        if trusted_ca_file is not None:
            self._ssl.load_verify_locations(cafile=str(trusted_ca_file))
        self._keys: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}

    async def verify(self, assertion: str, issuer: str) -> None:
        """Raise Entra's error unless the assertion is an RS256 JWT signed by one of `issuer`'s keys."""
        try:
            header_part, payload_part, signature_part = assertion.strip().split(".")
            header = json.loads(_b64url_decode(header_part))
            signature = _b64url_decode(signature_part)
        except (ValueError, UnicodeDecodeError) as error:
            raise _failed("The token is not a signed JWT.") from error
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            raise _failed("The token's signing algorithm is not RS256.")
        keys = await self._issuer_keys(issuer)
        key = keys.get(str(header.get("kid"))) if "kid" in header else next(iter(keys.values()), None)
        if key is None:
            raise _failed("The key was not found.")
        try:
            public_key = rsa.RSAPublicNumbers(
                int.from_bytes(_b64url_decode(key["e"]), "big"),
                int.from_bytes(_b64url_decode(key["n"]), "big"),
            ).public_key()
            public_key.verify(
                signature,
                f"{header_part}.{payload_part}".encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, KeyError, ValueError, TypeError) as error:
            raise _failed("The signature does not verify with the issuer's key.") from error

    async def _issuer_keys(self, issuer: str) -> dict[str, dict[str, Any]]:
        cached = self._keys.get(issuer)
        if cached is not None and time.monotonic() - cached[0] < _CACHE_SECONDS:
            return cached[1]
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                discovery_url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
                async with session.get(discovery_url, ssl=self._ssl) as response:
                    response.raise_for_status()
                    jwks_uri = (await response.json(content_type=None))["jwks_uri"]
                async with session.get(jwks_uri, ssl=self._ssl) as response:
                    response.raise_for_status()
                    document = await response.json(content_type=None)
            keys = {str(k.get("kid")): k for k in document["keys"] if k.get("kty") == "RSA"}
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as error:
            raise _unreachable(issuer) from error
        self._keys[issuer] = (time.monotonic(), keys)
        return keys
