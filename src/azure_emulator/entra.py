"""Token issuance: the Entra v2 token endpoint (client secret, and client assertions checked against
federated identity credentials), the OpenID configuration MSAL discovers, and the two managed-identity
endpoints (IMDS and App Service) that hand out tokens for a managed identity.
"""

from __future__ import annotations

import dataclasses
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from azure_emulator import state, tokens
from azure_emulator.arm.identities import IDENTITY_TYPE
from azure_emulator.emulator import Emulator
from azure_emulator.errors import EntraError

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def parse_form(raw: bytes) -> dict[str, str]:
    """The token request's `application/x-www-form-urlencoded` body (first value of each field)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EntraError(
            400, "invalid_request", 9002313, "Invalid request. Request is malformed or invalid."
        ) from error
    return {key: values[0] for key, values in urllib.parse.parse_qs(text, keep_blank_values=True).items()}


def _require_tenant(emulator: Emulator, tenant: str) -> None:
    if tenant.lower() != emulator.world.tenant_id.lower():
        raise EntraError(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
            "signing into the correct cloud. Check with your subscription administrator, this may happen "
            "if there are no active subscriptions for the tenant.",
        )


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise EntraError(
            400,
            "invalid_request",
            900144,
            f"The request body must contain the following parameter: '{name}'.",
        )
    return value


@dataclasses.dataclass(frozen=True)
class ClientGrant:
    """A client-credentials request whose client is authenticated, up to the assertion's signature."""

    principal: state.Principal
    scope: str
    assertion: str | None = None
    assertion_issuer: str | None = None


def authenticate_client(emulator: Emulator, tenant: str, form: Mapping[str, str]) -> ClientGrant:
    """`POST /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`: who is asking, and for what.

    A client assertion's claims are matched here; its signature, when checked at all, is checked by the
    caller (it needs the issuer's keys over the network).
    """
    _require_tenant(emulator, tenant)
    grant_type = _required(form, "grant_type")
    if grant_type != "client_credentials":
        raise EntraError(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type}'.",
        )
    client_id = _required(form, "client_id")
    scope = _required(form, "scope")
    if not scope.split(" ")[0].endswith("/.default"):
        raise EntraError(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
            "value with /.default suffixed to the resource identifier (application ID URI).",
        )
    principal = emulator.world.principal_by_app_id(client_id)
    if principal is None:
        raise EntraError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{emulator.world.tenant_id}'. This can happen if the application has not been installed by "
            "the administrator of the tenant or consented to by any user in the tenant. You may have sent "
            "your authentication request to the wrong tenant.",
        )
    if "client_secret" in form:
        if principal.client_secret is None or form["client_secret"] != principal.client_secret:
            raise EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
            )
    elif "client_assertion" in form:
        if form.get("client_assertion_type") != JWT_BEARER:
            raise EntraError(
                400,
                "invalid_request",
                700010,
                f"Invalid client assertion type. The client_assertion_type must be '{JWT_BEARER}'.",
            )
        issuer = _check_assertion(emulator, principal, form["client_assertion"])
        return ClientGrant(principal, scope, form["client_assertion"], issuer)
    else:
        raise EntraError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    return ClientGrant(principal, scope)


def token_response(emulator: Emulator, grant: ClientGrant) -> dict[str, Any]:
    principal = grant.principal
    access_token, _ = emulator.issuer.issue(
        object_id=principal.object_id, app_id=principal.app_id, audience=tokens.audience_of_scope(grant.scope)
    )
    lifetime = tokens.TOKEN_LIFETIME_SECONDS
    return {
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }


def _check_assertion(emulator: Emulator, principal: state.Principal, assertion: str) -> str:
    """Workload identity federation: the assertion's iss/sub/aud must match one of the identity's FICs;
    returns the issuer. Matching is exact and case-sensitive (Entra's behaviour since 2025)."""
    try:
        claims = tokens.decode_unverified(assertion)
    except tokens.TokenInvalid as error:
        raise EntraError(400, "invalid_client", 50027, "JWT token is invalid or malformed.") from error
    issuer, subject, audience = claims.get("iss"), claims.get("sub"), claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    expires = claims.get("exp")
    now = time.time()
    if not isinstance(expires, int | float) or expires < now:
        raise EntraError(
            400,
            "invalid_client",
            700024,
            f"Client assertion is not within its valid time range. Current time: {_iso(now)}, expiry time "
            f"of assertion {_iso(expires) if isinstance(expires, int | float) else 'missing'}.",
        )
    owner = principal.owner_resource_id
    credentials = (
        list(emulator.world.federated_credentials.get(owner.lower(), {}).values())
        if owner
        and owner.lower() in emulator.world.resources
        and emulator.world.resources[owner.lower()].type == IDENTITY_TYPE
        else []
    )
    by_issuer = [c for c in credentials if c.issuer == issuer]
    if not by_issuer:
        raise EntraError(
            400,
            "invalid_client",
            700211,
            f"No matching federated identity record found for presented assertion issuer '{issuer}'. Please "
            "check your federated identity credential Subject, Audience and Issuer against the presented "
            "assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
        )
    by_subject = [c for c in by_issuer if c.subject == subject]
    if not by_subject:
        raise EntraError(
            400,
            "invalid_client",
            700213,
            f"No matching federated identity record found for presented assertion subject '{subject}'. "
            "Please check your federated identity credential Subject, Audience and Issuer against the "
            "presented assertion. "
            "https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
        )
    if not any(a in c.audiences for c in by_subject for a in audiences):
        raise EntraError(
            400,
            "invalid_client",
            700212,
            f"No matching federated identity record found for presented assertion audience '{audience}'. "
            "Please check your federated identity credential Subject, Audience and Issuer against the "
            "presented assertion. "
            "https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
        )
    return str(issuer)


def _iso(epoch: float) -> str:
    return time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(epoch))


def openid_configuration(emulator: Emulator, tenant: str, authority: str, *, v2: bool) -> dict[str, Any]:
    _require_tenant(emulator, tenant)
    base = f"{authority}/{tenant}"
    suffix = "/v2.0" if v2 else ""
    oauth = f"{base}/oauth2/v2.0" if v2 else f"{base}/oauth2"
    return {
        "token_endpoint": f"{oauth}/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{base}/discovery{suffix}/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        # MSAL checks the issuer against the authority's scheme and host.
        "issuer": f"{base}{suffix}",
        "request_uri_parameter_supported": False,
        "authorization_endpoint": f"{oauth}/authorize",
        "device_authorization_endpoint": f"{oauth}/devicecode",
        "end_session_endpoint": f"{oauth}/logout",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    }


def instance_discovery(emulator: Emulator, authority: str) -> dict[str, Any]:
    host = authority.split("://", 1)[-1]
    return {
        "tenant_discovery_endpoint": (
            f"{authority}/{emulator.world.tenant_id}/v2.0/.well-known/openid-configuration"
        ),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }


# --- managed identity endpoints ----------------------------------------------------------------------------


class ManagedIdentityError(Exception):
    """IMDS / App Service error: 400 `{"error": "invalid_request", "error_description": ...}`."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description

    def body(self) -> dict[str, Any]:
        return {"error": "invalid_request", "error_description": self.description}


def _identity_not_found() -> ManagedIdentityError:
    return ManagedIdentityError(400, "Identity not found")


def _attached_principals(emulator: Emulator, host_id: str) -> tuple[str | None, list[str]]:
    """(system-assigned principal, user-assigned principals) of the resource acting as the host."""
    host = emulator.world.resources.get(host_id.lower())
    if host is None or host.identity is None:
        return None, []
    system = host.identity.get("principalId")
    user = [value["principalId"] for value in (host.identity.get("userAssignedIdentities") or {}).values()]
    return system, user


def select_managed_identity(
    emulator: Emulator, *, client_id: str | None, object_id: str | None, resource_id: str | None
) -> state.Principal:
    """The managed identity a token request on the IMDS / App Service endpoint acts as.

    With a host resource set (control endpoint), only its identities are reachable, as on a real VM or
    app; without one, any managed identity in the emulated tenant can be selected by client id, object id
    or resource id, and a request naming none is refused.
    """
    world = emulator.world
    principal: state.Principal | None = None
    if client_id:
        principal = world.principal_by_app_id(client_id)
    elif object_id:
        principal = world.principals.get(object_id.lower())
    elif resource_id:
        resource = world.resources.get(resource_id.lower())
        if resource is not None and resource.type == IDENTITY_TYPE:
            principal = world.principals.get(resource.properties["principalId"])
    host = emulator.managed_identity_host
    if client_id or object_id or resource_id:
        if principal is None or principal.owner_resource_id is None:
            raise _identity_not_found()
        if host is not None:
            system, user = _attached_principals(emulator, host)
            if principal.object_id not in [*([system] if system else []), *user]:
                raise _identity_not_found()
        return principal
    if host is None:
        raise _identity_not_found()
    system, user = _attached_principals(emulator, host)
    chosen = system or (user[0] if len(user) == 1 else None)
    if chosen is None or chosen not in world.principals:
        raise _identity_not_found()
    return world.principals[chosen]


def managed_identity_token(
    emulator: Emulator, query: Mapping[str, str], *, app_service: bool
) -> dict[str, Any]:
    if not query.get("api-version"):
        raise ManagedIdentityError(400, "Required query variable 'api-version' is missing")
    resource = query.get("resource")
    if not resource:
        raise ManagedIdentityError(400, "Required query variable 'resource' is missing")
    principal = select_managed_identity(
        emulator,
        client_id=query.get("client_id"),
        object_id=query.get("object_id") or query.get("principal_id"),
        resource_id=query.get("msi_res_id") or query.get("mi_res_id"),
    )
    access_token, expires_on = emulator.issuer.issue(
        object_id=principal.object_id, app_id=principal.app_id, audience=resource
    )
    now = int(time.time())
    body: dict[str, Any] = {
        "access_token": access_token,
        "client_id": principal.app_id,
        "expires_on": str(expires_on),
        "resource": resource,
        "token_type": "Bearer",
    }
    if not app_service:
        lifetime = str(expires_on - now)
        body.update({"expires_in": lifetime, "ext_expires_in": lifetime, "not_before": str(now)})
    return body
