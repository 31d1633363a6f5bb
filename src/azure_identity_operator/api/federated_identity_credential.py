"""The `FederatedIdentityCredential` custom resource: typed models of its spec, and its spec resolved.

A credential lets a workload that holds a token from `issuer` for `subject` (and one of `audiences`) act as
the user-assigned identity named by `identityRef`. Two conveniences fill fields from the cluster:
`serviceAccountRef` fills the subject `system:serviceaccount:<namespace>:<name>`, and the operator's
`IDENTITY_OPERATOR_OIDC_ISSUER` fills `issuer` when the spec leaves it out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import pydantic

from azure_identity_operator.api.common import ApiModel, DeletionPolicy, InvalidSpecError, parse_model
from azure_identity_operator.api.user_assigned_identity import LocalObjectReference

DEFAULT_AUDIENCE = "api://AzureADTokenExchange"
"""The audience Azure's tools and the workload-identity webhook use; Azure itself fills in nothing."""


class FederatedIdentityCredentialSpec(ApiModel):
    identity_ref: LocalObjectReference
    issuer: str | None = None
    subject: str | None = None
    service_account_ref: LocalObjectReference | None = None
    audiences: list[str] = pydantic.Field(default_factory=lambda: [DEFAULT_AUDIENCE])
    azure_name: str | None = None
    deletion_policy: DeletionPolicy = "Delete"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DesiredCredential:
    """The credential Azure should hold under the referenced identity, every default filled in."""

    identity_name: str
    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]
    deletion_policy: DeletionPolicy = "Delete"


def parse_spec(spec: Mapping[str, Any] | None) -> FederatedIdentityCredentialSpec:
    return parse_model(FederatedIdentityCredentialSpec, spec)


def service_account_subject(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def desired_credential(
    spec: FederatedIdentityCredentialSpec,
    *,
    object_name: str,
    namespace: str,
    default_issuer: str | None,
) -> DesiredCredential:
    """Fill the defaults; raise `InvalidSpecError` when the spec leaves something undecidable."""
    if spec.subject and spec.service_account_ref:
        raise InvalidSpecError("set either spec.subject or spec.serviceAccountRef, not both")
    if spec.service_account_ref:
        subject = service_account_subject(namespace, spec.service_account_ref.name)
    elif spec.subject and spec.subject.strip():
        subject = spec.subject.strip()
    else:
        raise InvalidSpecError(
            "spec.subject is required (or spec.serviceAccountRef to trust a ServiceAccount of this namespace)"
        )
    issuer = (spec.issuer or "").strip() or (default_issuer or "").strip()
    if not issuer:
        raise InvalidSpecError(
            "spec.issuer is required: this operator has no cluster OIDC issuer configured "
            "(IDENTITY_OPERATOR_OIDC_ISSUER) to default it to"
        )
    parts = urlsplit(issuer)
    if parts.scheme != "https" or not parts.netloc:
        raise InvalidSpecError(f"spec.issuer must be an https:// URL, not {issuer!r}")
    audiences = tuple(audience.strip() for audience in spec.audiences)
    if not audiences or any(not audience for audience in audiences):
        raise InvalidSpecError("spec.audiences must list at least one non-empty audience")
    return DesiredCredential(
        identity_name=spec.identity_ref.name,
        name=(spec.azure_name or object_name).strip(),
        issuer=issuer,
        subject=subject,
        audiences=audiences,
        deletion_policy=spec.deletion_policy,
    )
