"""Access tokens: issue and verify the JWTs the emulator hands out, and read client assertions.

Issued tokens are JWTs shaped like Entra v1 access tokens for ARM (`aud`, `iss`, `tid`, `oid`, `appid`,
`idtyp`), signed with HS256 and a key kept in the state folder, so they survive a restart when state is
persisted. Nothing in the Azure SDK parses an access token; ARM here verifies the signature, expiry and
audience, and acts as the `oid` principal.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import time
from typing import Any

# ARM accepts tokens for either of its two resource URIs, with or without the trailing slash.
ARM_AUDIENCES = (
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
)
TOKEN_LIFETIME_SECONDS = 3599


class TokenInvalid(Exception):
    """A token that is malformed, badly signed, or not a JWT at all."""


@dataclasses.dataclass(frozen=True)
class AccessTokenClaims:
    object_id: str
    app_id: str
    tenant_id: str
    audience: str
    expires_on: int


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError) as error:
        raise TokenInvalid("not base64url") from error


def audience_of_scope(scope: str) -> str:
    """`https://management.azure.com/.default` -> `https://management.azure.com/` (the v1 resource).

    Entra treats `https://management.core.windows.net//.default` (the double slash some tools send) as the
    same resource, so any run of trailing slashes becomes one."""
    first = scope.split(" ")[0]
    if first.endswith("/.default"):
        return first[: -len("/.default")].rstrip("/") + "/"
    return first


class TokenIssuer:
    def __init__(self, signing_key: bytes, tenant_id: str) -> None:
        self._key = signing_key
        self._tenant_id = tenant_id

    def issue(
        self, *, object_id: str, app_id: str, audience: str, now: float | None = None
    ) -> tuple[str, int]:
        issued_at = int(now if now is not None else time.time())
        expires_on = issued_at + TOKEN_LIFETIME_SECONDS
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self._tenant_id}/",
            "iat": issued_at,
            "nbf": issued_at,
            "exp": expires_on,
            "appid": app_id,
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{self._tenant_id}/",
            "idtyp": "app",
            "oid": object_id,
            "sub": object_id,
            "tid": self._tenant_id,
            "ver": "1.0",
        }
        return self._sign(claims), expires_on

    def _sign(self, claims: dict[str, Any]) -> str:
        header = _b64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode("ascii")
        signature = hmac.new(self._key, signing_input, hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url_encode(signature)}"

    def verify(self, token: str) -> AccessTokenClaims:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenInvalid("not a JWT")
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii", errors="replace")
        expected = hmac.new(self._key, signing_input, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _b64url_decode(parts[2])):
            raise TokenInvalid("signature")
        claims = decode_unverified(token)
        try:
            return AccessTokenClaims(
                object_id=str(claims["oid"]),
                app_id=str(claims["appid"]),
                tenant_id=str(claims["tid"]),
                audience=str(claims["aud"]),
                expires_on=int(claims["exp"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise TokenInvalid("claims") from error


def decode_unverified(token: str) -> dict[str, Any]:
    """The claims of a JWT without checking its signature (client assertions: see the README)."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise TokenInvalid("not a JWT")
    try:
        claims = json.loads(_b64url_decode(parts[1]))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TokenInvalid("payload") from error
    if not isinstance(claims, dict):
        raise TokenInvalid("payload")
    return claims
