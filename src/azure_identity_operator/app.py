"""Composition root: builds the kopf registry, kopf's settings and the handlers' dependencies.

Nothing here runs at import time; `__main__` calls `build` with the settings and passes the results to
`kopf.operator`. Each kind's handler module exposes `register(registry, context)`; adding a kind is one
line in `KIND_MODULES`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Protocol

import kopf

from azure_identity_operator import config
from azure_identity_operator.api import constants
from azure_identity_operator.arm.sdk.authorization import SdkAuthorizationPort
from azure_identity_operator.arm.sdk.identities import SdkIdentityPort
from azure_identity_operator.arm.sdk.resources import SdkResourcePort
from azure_identity_operator.arm.sdk.session import AzureSession
from azure_identity_operator.handlers import (
    federated_identity_credentials,
    role_assignments,
    system_assigned_identities,
    user_assigned_identities,
)
from azure_identity_operator.handlers.context import OperatorContext
from azure_identity_operator.handlers.dependants import DependantWiring
from azure_identity_operator.handlers.kube import KubeWriter


class KindHandlers(Protocol):
    """A handler module: registers one kind's handlers, indexes and timers."""

    def register(self, registry: kopf.OperatorRegistry, context: OperatorContext) -> None: ...


KIND_MODULES: tuple[KindHandlers, ...] = (
    user_assigned_identities,
    federated_identity_credentials,
    system_assigned_identities,
    role_assignments,
)


@dataclasses.dataclass(frozen=True)
class Operator:
    registry: kopf.OperatorRegistry
    settings: kopf.OperatorSettings
    context: OperatorContext


def operator_settings(*, peering_name: str | None = None) -> kopf.OperatorSettings:
    """kopf settings: our own finalizer and storage keys on user objects, never kopf's default domain."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = constants.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=constants.STORAGE_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=constants.STORAGE_PREFIX, key="last-handled-configuration"
    )
    # Events are posted explicitly on Ready transitions (handlers.runtime); kopf's own log-to-Event
    # mirroring would repeat every retry as an Event.
    settings.posting.level = logging.CRITICAL
    if peering_name:
        settings.peering.name = peering_name
        settings.peering.mandatory = True
    else:
        settings.peering.standalone = True
    return settings


def build(settings: config.Settings, *, peering_name: str | None = None) -> Operator:
    registry = kopf.OperatorRegistry()
    session = AzureSession(settings)
    kube = KubeWriter.from_environment()
    context = OperatorContext(
        settings=settings,
        identities=SdkIdentityPort(session),
        kube=kube,
        dependants=DependantWiring(registry),
        authorization=SdkAuthorizationPort(session),
        resources=SdkResourcePort(session),
    )

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.cleanup(registry=registry)
    async def close_clients(**_: Any) -> None:
        await session.close()
        kube.close()

    for module in KIND_MODULES:
        module.register(registry, context)
    return Operator(registry=registry, settings=operator_settings(peering_name=peering_name), context=context)
