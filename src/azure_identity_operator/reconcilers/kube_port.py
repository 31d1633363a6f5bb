"""What reconcilers may write to Kubernetes besides their object's status, as a port: the handlers
implement it with the Kubernetes client; reconcilers never import one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class KubernetesError(Exception):
    """The Kubernetes API refused or failed a request (`status` is `None` when no answer arrived)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"the Kubernetes API answered {status}: {message}" if status else message)
        self.status = status
        self.message = message


class ConfigMapPort(Protocol):
    async def export_config_map(
        self, *, namespace: str, name: str, data: Mapping[str, str], owner: Mapping[str, str] | None
    ) -> bool:
        """Make ConfigMap `name` carry `data` (other keys kept); `True` if anything was written. Raises
        `KubernetesError`."""
        ...
