"""The operator's API group, version, finalizer and kinds: the names every layer agrees on."""

from __future__ import annotations

import dataclasses

GROUP = "identityoperator.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

FINALIZER = f"{GROUP}/finalizer"
"""Added before the first Azure write, removed once Azure no longer holds what the object owns."""

STORAGE_PREFIX = f"kopf.{GROUP}"
"""Where kopf would keep progress and last-handled specs, were it to handle changes: never its default
domain. kopf only watches for this operator (`handlers.controller`), so it writes none of them."""


@dataclasses.dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_name: str


USER_ASSIGNED_IDENTITY = Kind("UserAssignedIdentity", "userassignedidentities", "uai")
FEDERATED_IDENTITY_CREDENTIAL = Kind("FederatedIdentityCredential", "federatedidentitycredentials", "fic")
ROLE_ASSIGNMENT = Kind("RoleAssignment", "roleassignments", "ra")
SYSTEM_ASSIGNED_IDENTITY = Kind("SystemAssignedIdentity", "systemassignedidentities", "sai")
WORKLOAD_IDENTITY = Kind("WorkloadIdentity", "workloadidentities", "wi")
ROLE_DEFINITION = Kind("RoleDefinition", "roledefinitions", "rd")
ACCESS_POLICY = Kind("IdentityAccessPolicy", "identityaccesspolicies", "iap")
"""Cluster-scoped: what the namespaces it selects may ask of Azure (`reconcilers.access`)."""

WORKLOAD_IDENTITY_LABEL = f"{GROUP}/workload-identity"
"""On every object a WorkloadIdentity owns: its name (`kubectl get azureidentity -l ...=<name>`)."""
