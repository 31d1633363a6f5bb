"""Service account tokens: the TokenRequest subresource and the OIDC documents that let others verify
them (workload identity federation checks a token's signature against `/openid/v1/jwks`).

Tokens are RS256 JWTs signed with a key the server generates (and keeps under --state-dir), with the
claims kube-apiserver puts in projected service account tokens.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

JsonObject = dict[str, Any]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64url(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class TokenIssuer:
    """Signs service account tokens and publishes the matching OIDC discovery and JWKS documents."""

    def __init__(self, issuer: str, key_file: Path | None = None) -> None:
        self.issuer = issuer.rstrip("/")
        self._key_file = key_file
        self._loaded: rsa.RSAPrivateKey | None = None

    @property
    def _key(self) -> rsa.RSAPrivateKey:
        # Made on first use: generating an RSA key would slow every server start
        if self._loaded is None:
            self._loaded = self._load_or_create(self._key_file)
        return self._loaded

    @property
    def key_id(self) -> str:
        public_der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return _b64url(hashlib.sha256(public_der).digest())

    @staticmethod
    def _load_or_create(key_file: Path | None) -> rsa.RSAPrivateKey:
        if key_file is not None and key_file.exists():
            loaded = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
            if isinstance(loaded, rsa.RSAPrivateKey):
                return loaded
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if key_file is not None:
            key_file.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            key_file.chmod(0o600)
        return key

    def sign(self, claims: JsonObject) -> str:
        header = {"alg": "RS256", "kid": self.key_id, "typ": "JWT"}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def verify(self, token: str) -> JsonObject | None:
        """The claims of a token this issuer signed and that has not expired, else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            signature = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
            self._key.public_key().verify(
                signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (ValueError, InvalidSignature):
            return None
        if not isinstance(claims, dict) or claims.get("iss") != self.issuer:
            return None
        if int(claims.get("exp", 0)) < time.time():
            return None
        return claims

    def token_request(self, service_account: JsonObject, request: JsonObject) -> JsonObject:
        """Answer a TokenRequest for a stored ServiceAccount."""
        spec = request.get("spec") or {}
        audiences = list(spec.get("audiences") or [self.issuer])
        lifetime = int(spec.get("expirationSeconds") or 3600)
        issued_at = int(time.time())
        metadata = service_account["metadata"]
        claims: JsonObject = {
            "aud": audiences,
            "exp": issued_at + lifetime,
            "iat": issued_at,
            "nbf": issued_at,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "sub": f"system:serviceaccount:{metadata['namespace']}:{metadata['name']}",
            "kubernetes.io": {
                "namespace": metadata["namespace"],
                "serviceaccount": {"name": metadata["name"], "uid": metadata["uid"]},
            },
        }
        expiry = datetime.datetime.fromtimestamp(issued_at + lifetime, datetime.UTC)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "creationTimestamp": None,
            },
            "spec": {
                "audiences": audiences,
                "expirationSeconds": lifetime,
                "boundObjectRef": spec.get("boundObjectRef"),
            },
            "status": {
                "token": self.sign(claims),
                "expirationTimestamp": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }

    def openid_configuration(self) -> JsonObject:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def jwks(self) -> JsonObject:
        numbers = self._key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "use": "sig",
                    "kty": "RSA",
                    "kid": self.key_id,
                    "alg": "RS256",
                    "n": _int_b64url(numbers.n),
                    "e": _int_b64url(numbers.e),
                }
            ]
        }
