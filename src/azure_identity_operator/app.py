"""Composition root: builds the kopf registry, kopf's settings, the Azure ports and the controller.

Nothing here runs at import time; `__main__` calls `build` with the settings and passes the results to
`kopf.operator`. The kinds are listed once, in `handlers.kinds`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import kopf

from azure_identity_operator import config
from azure_identity_operator.api import constants
from azure_identity_operator.arm.sdk.authorization import SdkAuthorizationPort
from azure_identity_operator.arm.sdk.identities import SdkIdentityPort
from azure_identity_operator.arm.sdk.resources import SdkResourcePort
from azure_identity_operator.arm.sdk.session import AzureSession
from azure_identity_operator.handlers import kinds, kube_api
from azure_identity_operator.handlers.context import OperatorContext
from azure_identity_operator.handlers.controller import Controller
from azure_identity_operator.handlers.kube import KubeWriter, OwnedObjects
from azure_identity_operator.reconcilers.kube_port import ClusterIdentity, ClusterIssuer

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Operator:
    registry: kopf.OperatorRegistry
    settings: kopf.OperatorSettings
    context: OperatorContext
    controller: Controller


UNUSED_KOPF_FINALIZER = f"kopf.{constants.GROUP}/unused"
"""kopf removes its own finalizer from objects that have no deletion handler. The controller adds and
removes `constants.FINALIZER` itself, so kopf is given a name no object ever carries."""


def operator_settings(*, peering_name: str | None = None) -> kopf.OperatorSettings:
    """kopf settings: kopf only watches; nothing of its own on user objects, never its default domain."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = UNUSED_KOPF_FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=constants.STORAGE_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=constants.STORAGE_PREFIX, key="last-handled-configuration"
    )
    # Events are posted by the controller, from the operator by name; kopf's own log-to-Event mirroring
    # would repeat every retry as an Event.
    settings.posting.level = logging.CRITICAL
    if peering_name:
        settings.peering.name = peering_name
        settings.peering.mandatory = True
    else:
        settings.peering.standalone = True
    return settings


def build(settings: config.Settings, *, peering_name: str | None = None) -> Operator:
    registry = kopf.OperatorRegistry()
    kopf_settings = operator_settings(peering_name=peering_name)
    session = AzureSession(settings)
    kube = KubeWriter.from_environment(kopf_settings)
    context = OperatorContext(
        settings=settings,
        identities=SdkIdentityPort(session),
        kube=kube,
        authorization=SdkAuthorizationPort(session),
        resources=SdkResourcePort(session),
        owned=OwnedObjects(kube),
        cluster_issuer=ClusterIssuer(settings.oidc_issuer),
        cluster=ClusterIdentity(settings.cluster_id),
    )
    controller = Controller(
        kube=kube,
        kinds=kinds.build(context),
        sync_interval=settings.sync_interval,
        policy_source=kube,
        restricted_default=settings.default_policy == "restricted",
        remove_when_denied=settings.policy_existing_grants == "remove",
    )
    # What a write of a part returns goes straight into the controller's view of it.
    context.owned.written = controller.observe

    @kopf.on.login(registry=registry)
    def login(*, settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
        # kopf's own minimal logins (service account, else kubeconfig), as the operator's writes use: the
        # official `kubernetes` client that `kopf.login_via_client` needs is not part of the operator.
        return kube_api.login(settings)

    @kopf.on.cleanup(registry=registry)
    async def close_clients(**_: Any) -> None:
        await session.close()
        await kube.close()

    @kopf.on.startup(registry=registry)
    async def discover_cluster_issuer(**_: Any) -> None:
        # Before the controller starts, so no credential is reconciled without the cluster's issuer.
        await _discover_issuer(kube, context.cluster_issuer)
        await _discover_cluster(kube, context.cluster)

    controller.register(registry)
    return Operator(
        registry=registry,
        settings=kopf_settings,
        context=context,
        controller=controller,
    )


async def _discover_issuer(kube: KubeWriter, issuer: ClusterIssuer) -> None:
    """Ask the API server for its service-account issuer unless one is configured; a failure leaves
    federated credentials to name their issuer (logged, never fatal)."""
    if issuer.configured:
        logger.info("Cluster OIDC issuer: %s (IDENTITY_OPERATOR_OIDC_ISSUER)", issuer.configured)
        return
    try:
        issuer.discovered = await kube.discover_issuer()
    except kube_api.KubeApiError as error:
        logger.warning("Could not read the cluster's OIDC issuer from the API server: %s", error)
        return
    if issuer.discovered:
        logger.info("Cluster OIDC issuer: %s (from the API server)", issuer.discovered)
    else:
        logger.warning(
            "The API server publishes no OIDC issuer and IDENTITY_OPERATOR_OIDC_ISSUER is not set: "
            "federated credentials must name their issuer"
        )


async def _discover_cluster(kube: KubeWriter, cluster: ClusterIdentity) -> None:
    """Name this cluster for ownership markers unless a name is configured: the kube-system namespace's
    uid. Without either, what the operator creates is marked with its namespace and name only (logged)."""
    if cluster.configured:
        logger.info("Cluster ID: %s (IDENTITY_OPERATOR_CLUSTER_ID)", cluster.configured)
        return
    try:
        cluster.discovered = await kube.namespace_uid("kube-system")
    except kube_api.KubeApiError as error:
        logger.warning("Could not read the kube-system namespace to name this cluster: %s", error)
        return
    if cluster.discovered:
        logger.info("Cluster ID: %s (the uid of namespace kube-system)", cluster.discovered)
    else:
        logger.warning(
            "No kube-system namespace and IDENTITY_OPERATOR_CLUSTER_ID is not set: ownership markers "
            "name no cluster"
        )
