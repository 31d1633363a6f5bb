"""The operator's kinds: one line each, binding a kind's hooks (`reconcilers.<kind>`) to its Azure ports.

Everything else follows from this tuple: what the controller watches and reconciles, which kinds are
identities that wake their dependants, and the objects-by-Ready-state gauge. A new kind is a module of
hooks in `reconcilers` and one line here.
"""

from __future__ import annotations

from azure_identity_operator.handlers.context import OperatorContext
from azure_identity_operator.handlers.controller import KindRuntime
from azure_identity_operator.reconcilers.federated_identity_credentials import (
    FederatedIdentityCredentialHooks,
)
from azure_identity_operator.reconcilers.role_assignments import RoleAssignmentHooks
from azure_identity_operator.reconcilers.system_assigned_identities import SystemAssignedIdentityHooks
from azure_identity_operator.reconcilers.user_assigned_identities import UserAssignedIdentityHooks
from azure_identity_operator.reconcilers.workload_identities import WorkloadIdentityHooks


def build(context: OperatorContext) -> tuple[KindRuntime, ...]:
    settings = context.settings
    return (
        KindRuntime(
            UserAssignedIdentityHooks(
                context.identities,
                context.resources,
                context.kube,
                default_subscription_id=settings.subscription_id,
                default_tenant_id=settings.tenant_id,
                cluster=context.cluster,
            ),
            provides_principal=True,
        ),
        KindRuntime(SystemAssignedIdentityHooks(context.resources), provides_principal=True),
        KindRuntime(
            FederatedIdentityCredentialHooks(context.identities, context.kube, issuer=context.cluster_issuer)
        ),
        KindRuntime(RoleAssignmentHooks(context.authorization, cluster=context.cluster)),
        KindRuntime(WorkloadIdentityHooks(context.owned, context.kube)),
    )
