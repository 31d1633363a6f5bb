"""The dependencies every kind needs, built once by the composition root (`app`)."""

from __future__ import annotations

import dataclasses

from azure_identity_operator import config
from azure_identity_operator.arm.authorization import AuthorizationPort
from azure_identity_operator.arm.identities import IdentityPort
from azure_identity_operator.arm.resources import ResourcePort
from azure_identity_operator.handlers.kube import KubeWriter, OwnedObjects
from azure_identity_operator.reconcilers.kube_port import ClusterIdentity, ClusterIssuer


@dataclasses.dataclass(frozen=True, kw_only=True)
class OperatorContext:
    settings: config.Settings
    identities: IdentityPort
    kube: KubeWriter
    authorization: AuthorizationPort
    """Role definitions and role assignments."""
    resources: ResourcePort
    """The identity blocks of existing Azure resources (system-assigned identities, attachments)."""
    owned: OwnedObjects
    """The objects a WorkloadIdentity owns, written through `kube`."""
    cluster_issuer: ClusterIssuer = dataclasses.field(default_factory=ClusterIssuer)
    """The cluster's service-account issuer: configured, or discovered from the API server at start-up."""
    cluster: ClusterIdentity = dataclasses.field(default_factory=ClusterIdentity)
    """This cluster's name in ownership markers: configured, or the kube-system namespace's uid."""
