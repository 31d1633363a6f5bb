"""The `IdentityAccessPolicy` kind (cluster-scoped): which namespaces it governs, and what objects in them
may ask of Azure through the operator.

A policy selects namespaces by label and lists, per dimension, what is allowed and what is denied: the
roles they may grant, the scopes they may grant on, where they may create identities, the Azure resources
they may enable or attach identities on, the principals they may grant to, and the issuers and subjects
their federated credentials may trust. `reconcilers.access` evaluates requests against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pydantic

from azure_identity_operator.api.common import ApiModel, parse_model


class Rule(ApiModel):
    """`allow`: when present, only what matches one entry is allowed; `deny`: what matches any entry is
    denied, whatever `allow` says."""

    allow: list[str] | None = None
    deny: list[str] = pydantic.Field(default_factory=list)


class LabelSelectorRequirement(ApiModel):
    key: str = pydantic.Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = pydantic.Field(default_factory=list)


class LabelSelector(ApiModel):
    """A Kubernetes label selector; empty selects every namespace."""

    match_labels: dict[str, str] = pydantic.Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = pydantic.Field(default_factory=list)

    def selects(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(key) != value for key, value in self.match_labels.items()):
            return False
        for requirement in self.match_expressions:
            present = requirement.key in labels
            value = labels.get(requirement.key)
            if requirement.operator == "In" and not (present and value in requirement.values):
                return False
            if requirement.operator == "NotIn" and present and value in requirement.values:
                return False
            if requirement.operator == "Exists" and not present:
                return False
            if requirement.operator == "DoesNotExist" and present:
                return False
        return True


class IdentityRules(ApiModel):
    resource_groups: Rule | None = None
    """ARM IDs (globs) of the resource groups identities may be created or adopted in."""
    locations: Rule | None = None


class PrincipalRules(ApiModel):
    allow: list[str] = pydantic.Field(default_factory=list)
    """Entra object IDs (`principalId`) that may be granted roles; `*` for any. The identities declared in
    the namespace are always allowed."""


class CredentialRules(ApiModel):
    issuers: Rule | None = None
    subjects: Rule | None = None


class IdentityAccessPolicySpec(ApiModel):
    namespace_selector: LabelSelector = pydantic.Field(default_factory=LabelSelector)
    roles: Rule | None = None
    scopes: Rule | None = None
    identities: IdentityRules | None = None
    resources: Rule | None = None
    principals: PrincipalRules | None = None
    federated_credentials: CredentialRules | None = None


def parse_spec(raw: Mapping[str, Any] | None) -> IdentityAccessPolicySpec:
    return parse_model(IdentityAccessPolicySpec, raw)
