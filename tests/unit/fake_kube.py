"""In-memory fakes of the operator's Kubernetes ports (`reconcilers.kube_port`), for reconciler unit tests.

`FakeServiceAccounts` keeps ServiceAccounts by (namespace, name) and records every read and write, so a test
can assert what a reconcile read and that it wrote nothing; `fail_next` makes the next call of a method
raise a given `KubernetesError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure_identity_operator.reconcilers.kube_port import KubernetesError


class FakeServiceAccounts:
    """`ServiceAccountPort` in memory."""

    def __init__(self, *accounts: tuple[str, str]) -> None:
        self.accounts: dict[tuple[str, str], dict[str, Any]] = {}
        self.reads: list[tuple[str, str]] = []
        self.writes: list[tuple[str, str]] = []
        self._failures: dict[str, list[KubernetesError]] = {}
        for namespace, name in accounts:
            self.create(namespace, name)

    def create(self, namespace: str, name: str) -> None:
        self.accounts[(namespace, name)] = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"namespace": namespace, "name": name, "annotations": {}},
        }

    def delete(self, namespace: str, name: str) -> None:
        self.accounts.pop((namespace, name), None)

    def fail_next(self, method: str, error: KubernetesError, *, times: int = 1) -> None:
        self._failures.setdefault(method, []).extend([error] * times)

    def _enter(self, method: str, target: tuple[str, str], *, write: bool) -> None:
        (self.writes if write else self.reads).append(target)
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)

    async def read_service_account(self, *, namespace: str, name: str) -> Mapping[str, Any] | None:
        self._enter("read_service_account", (namespace, name), write=False)
        return self.accounts.get((namespace, name))

    async def annotate_service_account(
        self, *, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> bool:
        self._enter("annotate_service_account", (namespace, name), write=True)
        account = self.accounts.get((namespace, name))
        if account is None:
            return False
        current: dict[str, str] = account["metadata"]["annotations"]
        changed = {key: value for key, value in annotations.items() if current.get(key) != value}
        for key, value in changed.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        return bool(changed)
