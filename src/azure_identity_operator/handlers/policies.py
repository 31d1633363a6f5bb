"""The access policies in force, as the controller knows them: every IdentityAccessPolicy and every
namespace's labels, from their watches (and a list of each before the first reconcile).

`PolicyBook` answers three questions: may an object of a namespace ask this of Azure (`check`), which
namespaces does a change of a policy or of a namespace's labels concern (the controller re-checks their
objects), and what should each policy's status say (the namespaces it selects).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from azure_identity_operator.api import access_policy as api
from azure_identity_operator.api.common import InvalidSpecError
from azure_identity_operator.reconcilers import access

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class PolicyBook:
    restricted_default: bool = False
    policies: dict[str, access.Policy] = dataclasses.field(default_factory=dict)
    invalid: dict[str, str] = dataclasses.field(default_factory=dict)
    """Policy name → why its spec could not be read (reported on it; it then selects nothing)."""
    namespaces: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    """Namespace → its labels."""
    loaded: bool = False
    """Whether both have been listed once: until then, no object is reconciled."""

    # -- what objects may do --------------------------------------------------------------------------

    def knows(self, namespace: str) -> bool:
        """Whether the namespace's labels are known (they matter only while policies exist)."""
        return not self.policies or namespace in self.namespaces

    def check(self, namespace: str, requests: Sequence[access.Request]) -> access.Denial | None:
        if not requests:
            return None
        return access.evaluate(
            self.policies.values(),
            self.namespaces.get(namespace, {}),
            requests,
            restricted_default=self.restricted_default,
        )

    # -- changes ----------------------------------------------------------------------------------------

    def set_policy(self, name: str, spec: Mapping[str, Any] | None) -> set[str]:
        """Take a policy's new spec (`None`: deleted); the namespaces whose policies changed."""
        before = self._selected_by(name)
        self.policies.pop(name, None)
        self.invalid.pop(name, None)
        if spec is not None:
            try:
                self.policies[name] = access.Policy(name, api.parse_spec(spec))
            except InvalidSpecError as error:
                logger.warning("IdentityAccessPolicy %s cannot be read and selects nothing: %s", name, error)
                self.invalid[name] = str(error)
        return before | self._selected_by(name)

    def set_namespace(self, name: str, labels: Mapping[str, str] | None) -> set[str]:
        """Take a namespace's labels (`None`: deleted); the policies whose selection changed."""
        before = self._selecting(name)
        if labels is None:
            self.namespaces.pop(name, None)
        else:
            self.namespaces[name] = dict(labels)
        return before ^ self._selecting(name)

    def _selected_by(self, policy: str) -> set[str]:
        found = self.policies.get(policy)
        if found is None:
            return set()
        return set(access.selected_namespaces(found, self.namespaces))

    def _selecting(self, namespace: str) -> set[str]:
        labels = self.namespaces.get(namespace)
        if labels is None:
            return set()
        return {name for name, policy in self.policies.items() if policy.selects(labels)}

    # -- status -----------------------------------------------------------------------------------------

    def status_of(self, name: str) -> dict[str, Any]:
        """The policy's status fields: the namespaces it selects, and why it is not in force if it is not."""
        if name in self.invalid:
            return {"namespaces": [], "namespaceCount": 0, "problem": self.invalid[name]}
        selected = sorted(self._selected_by(name))
        return {"namespaces": selected, "namespaceCount": len(selected), "problem": None}
