"""Typed operator settings, read once at start-up from the environment (and overridden by CLI flags).

Azure settings use the variables the Azure SDK and tools already know (`AZURE_SUBSCRIPTION_ID`,
`AZURE_TENANT_ID`, `AZURE_AUTHORITY_HOST`, `AZURE_RESOURCE_MANAGER_ENDPOINT`); the credential itself is
left to `DefaultAzureCredential`, which reads its own variables. Operator behaviour uses the
`IDENTITY_OPERATOR_` prefix. Every setting is documented in the README's configuration table.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Literal

PUBLIC_CLOUD_RESOURCE_MANAGER = "https://management.azure.com"
PUBLIC_CLOUD_AUDIENCE = "https://management.azure.com"

LogFormat = Literal["text", "json"]
DefaultPolicy = Literal["permissive", "restricted"]
ExistingGrants = Literal["report", "remove"]

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable and what it expects."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the operator needs to know that is not in a custom resource."""

    subscription_id: str
    """Default subscription for objects that do not name one (`AZURE_SUBSCRIPTION_ID`)."""
    tenant_id: str | None
    """Tenant reported for identities when Azure does not say (`AZURE_TENANT_ID`)."""
    resource_manager_endpoint: str = PUBLIC_CLOUD_RESOURCE_MANAGER
    """ARM base URL (`AZURE_RESOURCE_MANAGER_ENDPOINT`), e.g. another cloud or the local emulator."""
    resource_manager_audience: str = PUBLIC_CLOUD_AUDIENCE
    """Token audience of ARM (`AZURE_RESOURCE_MANAGER_AUDIENCE`); tokens are for `<audience>/.default`. Left
    at the public cloud's, a US Government or China ARM endpoint uses its own cloud's (`arm.sdk.session`)."""
    authority_host: str | None = None
    """Entra authority (`AZURE_AUTHORITY_HOST`); `None` lets the SDK use the public cloud's."""
    oidc_issuer: str | None = None
    """The cluster's service-account issuer (`IDENTITY_OPERATOR_OIDC_ISSUER`), used by federated credentials
    that do not name an issuer."""
    sync_interval: float = 600.0
    """Seconds between drift checks of one object (`IDENTITY_OPERATOR_SYNC_INTERVAL`), jittered by ±10%."""
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (`IDENTITY_OPERATOR_NAMESPACES`, comma-separated); empty means all namespaces."""
    log_format: LogFormat = "text"
    """`text` or `json` (`IDENTITY_OPERATOR_LOG_FORMAT`)."""
    arm_timeout: float = 30.0
    """Seconds an ARM request may take before it is a transient failure (`IDENTITY_OPERATOR_ARM_TIMEOUT`)."""
    arm_buckets: str = ""
    """ARM's token buckets per subscription as this operator keeps them (`IDENTITY_OPERATOR_ARM_BUCKETS`,
    e.g. `reads=250:25,writes=200:10,deletes=200:10`: capacity and refill per second); ARM's own numbers
    for the kinds not named."""
    cluster_id: str | None = None
    """This cluster's name in the ownership markers the operator puts on what it creates in Azure
    (`IDENTITY_OPERATOR_CLUSTER_ID`); unset, the uid of the `kube-system` namespace, read at start-up."""
    default_policy: DefaultPolicy = "permissive"
    """What a namespace no IdentityAccessPolicy selects may do (`IDENTITY_OPERATOR_DEFAULT_POLICY`):
    `permissive`, anything the operator's Azure identity may; `restricted`, no privileged role (Owner,
    User Access Administrator, Role Based Access Control Administrator) anywhere."""
    policy_existing_grants: ExistingGrants = "report"
    """What happens to what is already in Azure when a policy (added or changed) now forbids an object
    (`IDENTITY_OPERATOR_POLICY_EXISTING_GRANTS`): `report` leaves it and reports `PolicyDenied`; `remove`
    also removes what the object owns in Azure."""
    role_assignment_limit: int = 4000
    """Role assignments Azure allows per subscription (`IDENTITY_OPERATOR_ROLE_ASSIGNMENT_LIMIT`): Azure's
    troubleshooting page says 4,000, some newer pages 5,000; creating past it is refused before Azure is
    asked, and a Warning Event tells when usage passes 90%."""
    custom_role_limit: int = 5000
    """Custom roles Azure allows per tenant (`IDENTITY_OPERATOR_CUSTOM_ROLE_LIMIT`)."""
    arm_budget_share: float = 1.0
    """The part of the principal's ARM budget this instance may spend (`IDENTITY_OPERATOR_ARM_BUDGET_SHARE`,
    0 < share <= 1): 0.5 each for two instances sharing one Azure principal."""

    @property
    def credential_scope(self) -> str:
        return self.resource_manager_audience.rstrip("/") + "/.default"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        subscription_id = env.get("AZURE_SUBSCRIPTION_ID", "").strip()
        if not subscription_id:
            raise ConfigError("AZURE_SUBSCRIPTION_ID is required: the subscription objects default to")
        if not _GUID.match(subscription_id):
            # Caught here, not as an InvalidSpec on every object that leaves spec.subscriptionId out.
            raise ConfigError(
                f"AZURE_SUBSCRIPTION_ID must be a subscription ID (a GUID), not {subscription_id!r}"
            )
        log_format = env.get("IDENTITY_OPERATOR_LOG_FORMAT", "text").strip().lower() or "text"
        if log_format not in ("text", "json"):
            raise ConfigError(f"IDENTITY_OPERATOR_LOG_FORMAT must be 'text' or 'json', not {log_format!r}")
        return cls(
            subscription_id=subscription_id,
            tenant_id=env.get("AZURE_TENANT_ID") or None,
            resource_manager_endpoint=(
                env.get("AZURE_RESOURCE_MANAGER_ENDPOINT") or PUBLIC_CLOUD_RESOURCE_MANAGER
            ).rstrip("/"),
            resource_manager_audience=env.get("AZURE_RESOURCE_MANAGER_AUDIENCE") or PUBLIC_CLOUD_AUDIENCE,
            authority_host=(env.get("AZURE_AUTHORITY_HOST") or "").rstrip("/") or None,
            oidc_issuer=env.get("IDENTITY_OPERATOR_OIDC_ISSUER") or None,
            sync_interval=_positive_float(env, "IDENTITY_OPERATOR_SYNC_INTERVAL", 600.0),
            namespaces=tuple(
                ns.strip() for ns in env.get("IDENTITY_OPERATOR_NAMESPACES", "").split(",") if ns.strip()
            ),
            log_format="json" if log_format == "json" else "text",
            arm_timeout=_positive_float(env, "IDENTITY_OPERATOR_ARM_TIMEOUT", 30.0),
            arm_buckets=_buckets(env, "IDENTITY_OPERATOR_ARM_BUCKETS"),
            arm_budget_share=_share(env, "IDENTITY_OPERATOR_ARM_BUDGET_SHARE"),
            cluster_id=_cluster_id(env, "IDENTITY_OPERATOR_CLUSTER_ID"),
            role_assignment_limit=_positive_int(env, "IDENTITY_OPERATOR_ROLE_ASSIGNMENT_LIMIT", 4000),
            custom_role_limit=_positive_int(env, "IDENTITY_OPERATOR_CUSTOM_ROLE_LIMIT", 5000),
            default_policy="restricted"
            if _choice(env, "IDENTITY_OPERATOR_DEFAULT_POLICY", ("permissive", "restricted")) == "restricted"
            else "permissive",
            policy_existing_grants="remove"
            if _choice(env, "IDENTITY_OPERATOR_POLICY_EXISTING_GRANTS", ("report", "remove")) == "remove"
            else "report",
        )


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, not {raw!r}")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigError(f"{name} must be a positive whole number, not {raw!r}")
    return int(raw)


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first is the default), case-insensitive."""
    value = env.get(name, "").strip().lower() or choices[0]
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


_CLUSTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def _cluster_id(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not _CLUSTER_ID.match(value):
        raise ConfigError(
            f"{name} must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit, "
            f"not {value!r}"
        )
    return value


def _share(env: Mapping[str, str], name: str) -> float:
    value = _positive_float(env, name, 1.0)
    if value > 1:
        raise ConfigError(f"{name} must be a fraction in (0, 1], not {value}")
    return value


_BUCKET = re.compile(r"^(reads|writes|deletes)=\d+(\.\d+)?:\d+(\.\d+)?$")


def _buckets(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    for item in (part.strip() for part in raw.split(",") if part.strip()):
        if not _BUCKET.match(item):
            raise ConfigError(
                f"{name}: {item!r} is not <reads|writes|deletes>=<capacity>:<refill per second>, "
                "e.g. writes=200:10"
            )
    return raw
