"""The fixed, CamelCase reasons of the Ready condition. Each says what is happening or what the user must do.

They are part of the API: alerts and GitOps health checks match on them, so they change only deliberately.
"""

from __future__ import annotations

# Ready=True
SUCCEEDED = "Succeeded"
"""Azure matches the spec."""

# Ready=False while the operator makes progress on its own
RECONCILING = "Reconciling"
"""A change is being applied."""
QUEUED = "Queued"
"""The change waits its turn for Azure's request budget (ARM throttling limits); the message says about
how long. Not an error."""
WAITING_FOR_IDENTITY = "WaitingForIdentity"
"""The referenced identity is missing or not Ready yet; reconciling resumes as soon as it is."""
WAITING_FOR_ROLE_DEFINITION = "WaitingForRoleDefinition"
"""The RoleDefinition `roleRef` names is not Ready (or not in Azure) yet; resumes as soon as it is."""
WAITING_FOR_PRINCIPAL = "WaitingForPrincipal"
"""Azure does not know the principal yet (directory replication); retried with backoff."""
THROTTLED = "Throttled"
"""Azure asked us to slow down (429); retried after the delay it gave."""
AZURE_ERROR = "AzureError"
"""A transient Azure failure (5xx, timeout, conflict); retried with backoff."""
DELETING = "Deleting"
"""The object is being deleted and Azure is being cleaned up."""
PAUSED = "Paused"
"""The object carries `identityoperator.dev/reconcile-policy: skip`: the operator neither reads nor writes
Azure for it until the annotation is removed."""

# Ready=False until the user acts (no retries until the spec changes, apart from the drift check)
INVALID_SPEC = "InvalidSpec"
"""The spec is malformed: an invalid name, scope, GUID or combination of fields."""
REFERENCE_NOT_FOUND = "ReferenceNotFound"
"""A referenced Kubernetes object does not exist."""
SERVICE_ACCOUNT_NOT_FOUND = "ServiceAccountNotFound"
"""The ServiceAccount a credential trusts, or a workload identity annotates, does not exist (yet): Azure is
written, but no pod can use it until the ServiceAccount is created."""
ISSUER_MISMATCH = "IssuerMismatch"
"""A credential trusts a ServiceAccount of this cluster through an issuer that is not this cluster's: no
token of this cluster will ever match it."""
FORBIDDEN_SUBJECT = "ForbiddenSubject"
"""A credential would let a ServiceAccount of another namespace of this cluster act as the identity."""
SUBSCRIPTION_NOT_FOUND = "SubscriptionNotFound"
"""The subscription does not exist, or the operator's identity cannot see it."""
PRINCIPAL_NOT_FOUND = "PrincipalNotFound"
"""Azure kept reporting the principal as unknown well past directory replication: check the object ID."""
RESOURCE_GROUP_NOT_FOUND = "ResourceGroupNotFound"
"""The resource group does not exist in the subscription."""
RESOURCE_NOT_FOUND = "ResourceNotFound"
"""The Azure resource the object refers to does not exist."""
ROLE_NOT_FOUND = "RoleNotFound"
"""No role definition with that name or ID is assignable at the scope."""
AUTHORIZATION_FAILED = "AuthorizationFailed"
"""The operator's own identity lacks an Azure permission; the message names the action and scope."""
AZURE_REJECTED = "AzureRejected"
"""Azure refused the request as invalid; the message carries Azure's own explanation."""
CONFLICT = "Conflict"
"""Azure already holds something that clashes with the spec and that the operator will not take over."""
OWNED_ELSEWHERE = "OwnedElsewhere"
"""The Azure resource carries another owner's marker (another cluster, or another object): the operator
neither adopts, changes nor deletes it; the message names the owner."""
POLICY_DENIED = "PolicyDenied"
"""An IdentityAccessPolicy (or the restricted default) forbids what the spec asks; nothing is written to
Azure. The message names the policy and the rule."""
ROLE_ASSIGNMENT_LIMIT_EXCEEDED = "RoleAssignmentLimitExceeded"
"""The subscription holds as many role assignments as Azure allows (IDENTITY_OPERATOR_ROLE_ASSIGNMENT_LIMIT):
remove unused ones, or grant to groups instead of each identity."""
ROLE_DEFINITION_LIMIT_EXCEEDED = "RoleDefinitionLimitExceeded"
"""The tenant holds as many custom roles as Azure allows (IDENTITY_OPERATOR_CUSTOM_ROLE_LIMIT)."""
CREDENTIAL_LIMIT_REACHED = "CredentialLimitReached"
"""The identity already has the most federated credentials Azure allows (20); remove one to make room."""
UNSUPPORTED_RESOURCE = "UnsupportedResource"
"""The Azure resource type does not support managed identities."""
DELETION_BLOCKED = "DeletionBlocked"
"""The Azure side cannot be cleaned up; the message says why and what releases the object."""
OPERATOR_ERROR = "OperatorError"
"""The operator itself failed unexpectedly; retried with backoff. Worth a bug report with the logs."""


PROGRESSING = frozenset(
    {
        RECONCILING,
        QUEUED,
        WAITING_FOR_IDENTITY,
        WAITING_FOR_PRINCIPAL,
        WAITING_FOR_ROLE_DEFINITION,
        THROTTLED,
        AZURE_ERROR,
        DELETING,
        OPERATOR_ERROR,
    }
)
"""Not-ready reasons from which the operator makes progress without the user (kstatus `Reconciling`);
every other not-ready reason but `Paused` needs the user to act (kstatus `Stalled`)."""

TRANSIENT = frozenset({THROTTLED, AZURE_ERROR})
"""Reasons of a failed observation that says nothing about Azure's state: a drift check that ends in one
keeps the object's last known good status."""
