"""Azure RBAC evaluation: does a principal hold an action at a scope?

Mirrors how Azure decides: a role assignment applies when its scope is the request's scope or an ancestor
of it; the action is granted when some applying role lists it in `actions` (wildcards allowed) and does
not list it in `notActions`. Matching is case-insensitive, as in Azure. Built-in and custom roles are
evaluated alike (a custom role's permission blocks each grant on their own). Deny assignments and
conditions are not modelled, and neither are `dataActions`: the emulator serves no data plane.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Protocol

from azure_emulator import catalog


class Role(Protocol):
    """What RBAC evaluation needs of a role: a built-in `catalog.RoleDefinition` or a `state.CustomRole`."""

    @property
    def permissions(self) -> tuple[catalog.Permission, ...]: ...


RoleResolver = Callable[[str], Role | None]


@functools.lru_cache(maxsize=512)
def _pattern(action_pattern: str) -> re.Pattern[str]:
    # `*` stands for any run of characters, including `/`: "Microsoft.Authorization/*/Write" matches
    # "Microsoft.Authorization/roleAssignments/write". A `/*/` segment may also be empty, which is how the
    # Managed Identity Operator's "userAssignedIdentities/*/assign/action" grants
    # "userAssignedIdentities/assign/action".
    segments = action_pattern.split("/*/")
    escaped = "/(?:.*/)?".join(".*".join(re.escape(p) for p in segment.split("*")) for segment in segments)
    return re.compile(f"^{escaped}$", re.IGNORECASE)


def action_matches(action_pattern: str, action: str) -> bool:
    return _pattern(action_pattern).match(action) is not None


def permission_grants(permission: catalog.Permission, action: str) -> bool:
    return any(action_matches(p, action) for p in permission.actions) and not any(
        action_matches(p, action) for p in permission.not_actions
    )


def scope_covers(assignment_scope: str, resource_scope: str) -> bool:
    """True when an assignment at `assignment_scope` applies to `resource_scope` (same or a descendant)."""
    outer = assignment_scope.rstrip("/").lower()
    inner = resource_scope.rstrip("/").lower()
    if outer == "":
        return True  # the root scope "/" covers everything
    return inner == outer or inner.startswith(outer + "/")


def role_grants(role: Role, action: str) -> bool:
    return any(permission_grants(permission, action) for permission in role.permissions)


def is_allowed(
    role_guids_at_covering_scopes: Iterable[str], action: str, resolve: RoleResolver = catalog.find_role
) -> bool:
    """Whether any of the roles (by GUID, found with `resolve`) grants the action; unknown GUIDs grant
    nothing."""
    for guid in role_guids_at_covering_scopes:
        role = resolve(guid)
        if role is not None and role_grants(role, action):
            return True
    return False
