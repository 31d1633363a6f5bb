"""What reconcilers may write to Kubernetes besides their object's status, as a port: the handlers
implement it with the Kubernetes client; reconcilers never import one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from azure_identity_operator.api.constants import Kind


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


class ServiceAccountPort(Protocol):
    """The ServiceAccounts credentials trust and workload identities annotate: read one, and set or remove
    some of its annotations. The operator never creates or deletes a ServiceAccount."""

    async def read_service_account(self, *, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The ServiceAccount as stored, `None` if there is none. Raises `KubernetesError`."""
        ...

    async def annotate_service_account(
        self, *, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> bool:
        """Set the given annotations (`None` removes one), leaving every other annotation as it is; `True`
        if anything was written, `False` when they already were so or the ServiceAccount does not exist.
        Raises `KubernetesError`."""
        ...


class ClusterIssuer:
    """The cluster's service-account token issuer: the configured one (`IDENTITY_OPERATOR_OIDC_ISSUER`),
    else the one the API server publishes at `/.well-known/openid-configuration` (found at start-up)."""

    def __init__(self, configured: str | None = None) -> None:
        self.configured = (configured or "").strip() or None
        self.discovered: str | None = None

    @property
    def value(self) -> str | None:
        return self.configured or self.discovered


class ClusterIdentity:
    """This cluster's name in ownership markers: the configured one (`IDENTITY_OPERATOR_CLUSTER_ID`), else
    the uid of its `kube-system` namespace (read at start-up), which lives as long as the cluster does."""

    def __init__(self, configured: str | None = None) -> None:
        self.configured = (configured or "").strip() or None
        self.discovered: str | None = None

    @property
    def value(self) -> str | None:
        return self.configured or self.discovered


class OwnedObjectsPort(Protocol):
    """Objects of the operator's kinds that another of its objects owns (a WorkloadIdentity's parts)."""

    async def create_owned(
        self,
        *,
        kind: Kind,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        owner: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> None:
        """Create the object with `owner` (apiVersion, kind, name, uid) as its controller. Raises
        `KubernetesError` (409 when an object of that name exists)."""
        ...

    async def replace_owned_spec(
        self, *, kind: Kind, namespace: str, name: str, uid: str, spec: Mapping[str, Any]
    ) -> None:
        """Replace the whole spec of the object with that uid. Raises `KubernetesError`."""
        ...

    async def delete_owned(self, *, kind: Kind, namespace: str, name: str, uid: str) -> None:
        """Delete the object with that uid (its finalizer then cleans Azure up); gone already counts as done.
        Raises `KubernetesError`."""
        ...
