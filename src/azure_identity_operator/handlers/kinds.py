"""The operator's kinds: one line each, binding a kind's hooks (`reconcilers.<kind>`) to its Azure ports.

Everything else follows from this tuple: what the controller watches and reconciles, which kinds are
identities that wake their dependants, and the objects-by-Ready-state gauge. A new kind is a module of
hooks in `reconcilers` and one line here.
"""

from __future__ import annotations

from azure_identity_operator.handlers.context import OperatorContext
from azure_identity_operator.handlers.controller import KindRuntime
from azure_identity_operator.observability import metrics
from azure_identity_operator.reconcilers.federated_identity_credentials import (
    FederatedIdentityCredentialHooks,
)
from azure_identity_operator.reconcilers.role_assignments import RoleAssignmentHooks
from azure_identity_operator.reconcilers.role_definitions import RoleDefinitionHooks
from azure_identity_operator.reconcilers.system_assigned_identities import SystemAssignedIdentityHooks
from azure_identity_operator.reconcilers.user_assigned_identities import UserAssignedIdentityHooks
from azure_identity_operator.reconcilers.workload_identities import WorkloadIdentityHooks
from azure_identity_operator.status import reasons


def build(context: OperatorContext) -> tuple[KindRuntime, ...]:
    settings = context.settings
    role_assignments = RoleAssignmentHooks(
        context.authorization, cluster=context.cluster, assignment_limit=settings.role_assignment_limit
    )
    # The count per subscription the assignments keep, served as a metric next to the limit.
    metrics.OPERATOR.role_assignment_counts.counts = role_assignments.assignment_counts
    metrics.OPERATOR.role_assignment_counts.limit = settings.role_assignment_limit
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
        KindRuntime(
            RoleDefinitionHooks(
                context.authorization, cluster=context.cluster, custom_role_limit=settings.custom_role_limit
            ),
            wakes=reasons.WAITING_FOR_ROLE_DEFINITION,
        ),
        KindRuntime(role_assignments),
        KindRuntime(WorkloadIdentityHooks(context.owned, context.kube)),
    )
