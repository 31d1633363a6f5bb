"""The operator's API group, version, finalizer and kinds: the names every layer agrees on."""

from __future__ import annotations

import dataclasses

GROUP = "identityoperator.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

FINALIZER = f"{GROUP}/finalizer"
"""Added before the first Azure write, removed once Azure no longer holds what the object owns."""

STORAGE_PREFIX = f"kopf.{GROUP}"
"""Prefix of the annotations kopf keeps its progress and last-handled spec in (never kopf's default domain).

It must differ from GROUP: kopf leaves every annotation under its storage prefix out of the object's
essence, so an `identityoperator.dev/...` prefix would hide `IDENTITY_PRINCIPAL_ANNOTATION` changes from
the dependants' update handlers and the wake-up would never fire.
"""

IDENTITY_PRINCIPAL_ANNOTATION = f"{GROUP}/identity-principal-id"
"""Set on objects that depend on an identity to the principal they should use ('' while there is none).

The identity's handler keeps it current; a change wakes the dependant's reconcile at once, without every
dependant polling the identity.
"""


@dataclasses.dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_name: str


USER_ASSIGNED_IDENTITY = Kind("UserAssignedIdentity", "userassignedidentities", "uai")
FEDERATED_IDENTITY_CREDENTIAL = Kind("FederatedIdentityCredential", "federatedidentitycredentials", "fic")
ROLE_ASSIGNMENT = Kind("RoleAssignment", "roleassignments", "ra")
SYSTEM_ASSIGNED_IDENTITY = Kind("SystemAssignedIdentity", "systemassignedidentities", "sai")
