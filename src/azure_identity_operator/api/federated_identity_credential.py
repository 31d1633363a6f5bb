"""The `FederatedIdentityCredential` custom resource: typed models of its spec, and its spec resolved.

A credential lets a workload that holds a token from `issuer` for `subject` (and one of `audiences`) act as
the user-assigned identity named by `identityRef`. Two conveniences fill fields from the cluster:
`serviceAccountRef` fills the subject `system:serviceaccount:<namespace>:<name>`, and the cluster's
service-account issuer (`IDENTITY_OPERATOR_OIDC_ISSUER`, else the one the API server publishes) fills
`issuer` when the spec leaves it out.
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
    service_account: str | None = None
    """The ServiceAccount of the object's namespace that `serviceAccountRef` names (`None` for a raw
    `subject`)."""
    issuer_defaulted: bool = False
    """Whether `issuer` is the cluster's, filled in because the spec names none."""


def parse_spec(spec: Mapping[str, Any] | None) -> FederatedIdentityCredentialSpec:
    return parse_model(FederatedIdentityCredentialSpec, spec)


SERVICE_ACCOUNT_SUBJECT_PREFIX = "system:serviceaccount:"


def service_account_subject(namespace: str, service_account: str) -> str:
    return f"{SERVICE_ACCOUNT_SUBJECT_PREFIX}{namespace}:{service_account}"


def service_account_of(subject: str) -> tuple[str, str] | None:
    """(namespace, name) of the ServiceAccount a Kubernetes token subject names, `None` for any other
    subject. The prefix is matched without regard to case, so no spelling of it slips through a check."""
    if not subject.lower().startswith(SERVICE_ACCOUNT_SUBJECT_PREFIX):
        return None
    namespace, _, name = subject[len(SERVICE_ACCOUNT_SUBJECT_PREFIX) :].partition(":")
    return (namespace, name) if namespace and name else None


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
    service_account = spec.service_account_ref.name if spec.service_account_ref else None
    if service_account:
        subject = service_account_subject(namespace, service_account)
    elif spec.subject and spec.subject.strip():
        subject = spec.subject.strip()
    else:
        raise InvalidSpecError(
            "spec.subject is required (or spec.serviceAccountRef to trust a ServiceAccount of this namespace)"
        )
    issuer = (spec.issuer or "").strip()
    issuer_defaulted = not issuer
    if issuer_defaulted:
        issuer = (default_issuer or "").strip()
    if not issuer:
        raise InvalidSpecError(
            "spec.issuer is required: the operator knows no cluster OIDC issuer to default it to "
            "(IDENTITY_OPERATOR_OIDC_ISSUER is unset and the API server publishes none)"
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
        service_account=service_account,
        issuer_defaulted=issuer_defaulted,
    )
