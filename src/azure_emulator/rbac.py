"""Azure RBAC evaluation: does a principal hold an action at a scope?

Mirrors how Azure decides: a role assignment applies when its scope is the request's scope or an ancestor
of it; the action is granted when some applying role lists it in `actions` (wildcards allowed) and does
not list it in `notActions`. Matching is case-insensitive, as in Azure. Deny assignments and conditions
are not modelled.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from azure_emulator import catalog


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


def is_allowed(role_guids_at_covering_scopes: Iterable[str], action: str) -> bool:
    for guid in role_guids_at_covering_scopes:
        role = catalog.find_role(guid)
        if role is not None and permission_grants(role.permission, action):
            return True
    return False
