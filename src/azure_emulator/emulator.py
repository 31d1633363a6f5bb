"""The running emulator's shared context: the world, the knobs, the token issuer, persistence, and the RBAC
check every ARM handler goes through.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from azure_emulator import assertions, behaviour, catalog, rbac, state, tokens
from azure_emulator.errors import ArmError


@dataclasses.dataclass
class Emulator:
    world: state.World
    issuer: tokens.TokenIssuer
    knobs: behaviour.Behaviour
    assertion_verifier: assertions.AssertionVerifier = dataclasses.field(
        default_factory=assertions.AssertionVerifier
    )
    # The secret callers of the App Service managed-identity endpoint send as X-IDENTITY-HEADER.
    identity_header: str = ""
    # Where `state.json` is written after each change; None keeps state in memory only.
    state_file: Path | None = None
    # The resource (VM, site) the managed-identity endpoints run on; None lets them serve any identity.
    managed_identity_host: str | None = None
    # Long-running operations by id: (resource id, completes at monotonic time, final status).
    operations: dict[str, tuple[str, float, str]] = dataclasses.field(default_factory=dict)
    # Per-identity federated-credential write windows (lower identity id -> monotonic end time).
    fic_writes_until: dict[str, float] = dataclasses.field(default_factory=dict)

    def changed(self) -> None:
        """Called after every mutation of the world."""
        if self.state_file is not None:
            state.save(self.world, self.state_file)

    # --- principals ------------------------------------------------------------------------------------

    def principal_replicated(self, object_id: str) -> bool:
        """Whether the directory lookup ARM does for a role assignment would find this principal yet."""
        principal = self.world.principals.get(object_id.lower())
        if principal is None:
            return False
        return time.time() - principal.created_at >= self.knobs.principal_delay

    # --- RBAC --------------------------------------------------------------------------------------------

    def find_role(self, guid: str) -> catalog.RoleDefinition | state.CustomRole | None:
        """A built-in role, or a custom role of the tenant, by GUID."""
        return catalog.find_role(guid) or self.world.custom_roles.get(guid.lower())

    def role_guids_for(self, object_id: str, scope: str) -> list[str]:
        lowered = object_id.lower()
        return [
            assignment.role_definition_id.rsplit("/", 1)[-1]
            for assignment in self.world.role_assignments.values()
            if assignment.principal_id.lower() == lowered and rbac.scope_covers(assignment.scope, scope)
        ]

    def is_allowed(self, object_id: str, action: str, scope: str) -> bool:
        return rbac.is_allowed(self.role_guids_for(object_id, scope), action, self.find_role)

    def list_filter(self, object_id: str, action: str, scope: str) -> Callable[[str, str], bool]:
        """Which items of a list at `scope` the caller sees, as `(item read action, item id) -> bool`.

        ARM lists everything when the caller may read at the list's scope; when it may not, but holds some
        assignment below that scope, the list is filtered to the items it may read; with no access at all
        the list is refused (AuthorizationFailed).
        """
        if self.is_allowed(object_id, action, scope):
            return lambda item_action, item_id: True
        lowered = object_id.lower()
        if not any(
            a.principal_id.lower() == lowered and rbac.scope_covers(scope, a.scope)
            for a in self.world.role_assignments.values()
        ):
            self.authorize(object_id, action, scope)
        return lambda item_action, item_id: self.is_allowed(object_id, item_action, item_id)

    def authorize(self, object_id: str, action: str, scope: str) -> None:
        if not self.is_allowed(object_id, action, scope):
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client '{object_id}' with object id '{object_id}' does not have authorization to "
                f"perform action '{action}' over scope '{scope}' or the scope is invalid. If access was "
                "recently granted, please refresh your credentials.",
            )

    def authorize_linked(
        self, object_id: str, action: str, scope: str, linked_action: str, linked: str
    ) -> None:
        """The check ARM makes when a write references another resource (attaching a UAI to a VM)."""
        if not self.is_allowed(object_id, linked_action, linked):
            raise ArmError(
                403,
                "LinkedAuthorizationFailed",
                f"The client '{object_id}' with object id '{object_id}' has permission to perform action "
                f"'{action}' on scope '{scope}'; however, it does not have permission to perform action(s) "
                f"'{linked_action}' on the linked scope(s) '{linked}' (respectively) or the linked scope(s) "
                "are invalid.",
            )
