"""ARM errors in plain data, classified once, and mapped once to the Ready condition and the retry policy.

The SDK adapter (`arm.sdk`) turns every SDK exception into an `ArmError`; reconcilers catch the errors
they have a plan for (a 404 that means "create it", `RoleAssignmentExists` that means "adopt it") and let
the rest reach `outcome_for`, the one table that says which errors heal by themselves (retry with backoff)
and which need a person (Stalled; some still retried slowly, so a fix made in Azure is noticed within
minutes). The transport decides first: a 5xx or a 429 is transient whatever code it carries (a token
endpoint's 500 is not a refused credential). Then the code table; then unknown 400s need the user and
anything else unknown is assumed transient, the rule Azure Service Operator follows.
"""

from __future__ import annotations

import dataclasses
import enum

from azure_identity_operator.status import outcome, reasons

DEFAULT_RETRY_SECONDS = 10.0
THROTTLE_DEFAULT_SECONDS = 30.0
SLOW_RETRY_SECONDS = 60.0
"""First retry of a failure a person must fix in Azure (a missing role, resource group or subscription, a
lock): retried anyway, doubling up to `handlers` cap of 10 minutes, so the object follows the fix soon."""

GONE_CODES = frozenset(
    {
        "ResourceNotFound",
        "NotFound",
        "ResourceGroupNotFound",
        "ParentResourceNotFound",
        "SubscriptionNotFound",
    }
)
"""Codes that, when deleting, mean the thing is already gone (with its resource group or subscription)."""


class ErrorClass(enum.Enum):
    NOT_FOUND = "NotFound"
    RETRYABLE = "Retryable"
    THROTTLED = "Throttled"
    NEEDS_USER = "NeedsUser"


# Not frozen: Python itself sets attributes such as __traceback__ on exceptions as they propagate.
@dataclasses.dataclass(kw_only=True, eq=False)
class ArmError(Exception):
    """An ARM request that failed, as ARM reported it (or `status=None` when no response arrived)."""

    status: int | None
    code: str
    message: str
    request_id: str | None = None
    retry_after: float | None = None

    def __str__(self) -> str:
        where = f" (status {self.status})" if self.status is not None else ""
        return f"{self.code}{where}: {self.message}"

    @property
    def error_class(self) -> ErrorClass:
        return classify(self)

    @property
    def is_not_found(self) -> bool:
        return self.error_class is ErrorClass.NOT_FOUND

    @property
    def is_gone(self) -> bool:
        """Whether, for a read or a delete, the thing is not (or no longer) there: a 404, or a code saying
        its resource group or subscription is gone. The one "already gone" rule of every cleanup."""
        return self.status == 404 or self.code in GONE_CODES

    @property
    def is_transient(self) -> bool:
        """Whether the transport says nothing about the request itself: a 5xx, a 429, no response."""
        return self.error_class in (ErrorClass.RETRYABLE, ErrorClass.THROTTLED)


# Codes whose meaning does not follow from the status code alone: (class, Ready reason, retry seconds).
_BY_CODE: dict[str, tuple[ErrorClass, str, float | None]] = {
    "ResourceGroupNotFound": (ErrorClass.NEEDS_USER, reasons.RESOURCE_GROUP_NOT_FOUND, SLOW_RETRY_SECONDS),
    "SubscriptionNotFound": (ErrorClass.NEEDS_USER, reasons.SUBSCRIPTION_NOT_FOUND, SLOW_RETRY_SECONDS),
    "InvalidSubscriptionId": (ErrorClass.NEEDS_USER, reasons.INVALID_SPEC, None),
    "MissingSubscription": (ErrorClass.NEEDS_USER, reasons.INVALID_SPEC, None),
    "AuthorizationFailed": (ErrorClass.NEEDS_USER, reasons.AUTHORIZATION_FAILED, SLOW_RETRY_SECONDS),
    "LinkedAuthorizationFailed": (ErrorClass.NEEDS_USER, reasons.AUTHORIZATION_FAILED, SLOW_RETRY_SECONDS),
    "InvalidAuthenticationToken": (ErrorClass.NEEDS_USER, reasons.AUTHORIZATION_FAILED, None),
    "AuthenticationFailed": (ErrorClass.NEEDS_USER, reasons.AUTHORIZATION_FAILED, None),
    # No credential could even ask for a token (a projected service-account token not mounted yet, IMDS
    # not answering yet): usually heals by itself; the message lists what was tried.
    "CredentialUnavailable": (ErrorClass.RETRYABLE, reasons.AZURE_ERROR, DEFAULT_RETRY_SECONDS),
    "RequestDisallowedByPolicy": (ErrorClass.NEEDS_USER, reasons.AZURE_REJECTED, None),
    "ScopeLocked": (ErrorClass.NEEDS_USER, reasons.AZURE_REJECTED, SLOW_RETRY_SECONDS),
    "RoleDefinitionDoesNotExist": (ErrorClass.NEEDS_USER, reasons.ROLE_NOT_FOUND, None),
    "InvalidRoleDefinitionId": (ErrorClass.NEEDS_USER, reasons.INVALID_SPEC, None),
    "InvalidPrincipalId": (ErrorClass.NEEDS_USER, reasons.INVALID_SPEC, None),
    "UnmatchedPrincipalType": (ErrorClass.NEEDS_USER, reasons.INVALID_SPEC, None),
    "InvalidResourceName": (ErrorClass.NEEDS_USER, reasons.INVALID_SPEC, None),
    "RoleAssignmentExists": (ErrorClass.NEEDS_USER, reasons.CONFLICT, None),
    "RoleAssignmentUpdateNotPermitted": (ErrorClass.NEEDS_USER, reasons.CONFLICT, None),
    "InvalidResourceLocation": (ErrorClass.NEEDS_USER, reasons.CONFLICT, None),
    "MissingSubscriptionRegistration": (ErrorClass.NEEDS_USER, reasons.AZURE_REJECTED, None),
    "NoRegisteredProviderFound": (ErrorClass.NEEDS_USER, reasons.UNSUPPORTED_RESOURCE, None),
    "InvalidResourceType": (ErrorClass.NEEDS_USER, reasons.UNSUPPORTED_RESOURCE, None),
    # Directory replication: a fresh principal is unknown to RBAC for a while.
    "PrincipalNotFound": (ErrorClass.RETRYABLE, reasons.WAITING_FOR_PRINCIPAL, DEFAULT_RETRY_SECONDS),
    # The resource changed between the operator's read and its write (`If-Match` with a stale etag): the
    # next attempt reads it again, so it resolves at once.
    "PreconditionFailed": (ErrorClass.RETRYABLE, reasons.AZURE_ERROR, 2.0),
    # Azure serializes federated-credential writes per identity; a short retry resolves it.
    "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity": (
        ErrorClass.RETRYABLE,
        reasons.AZURE_ERROR,
        2.0,
    ),
}


def classify(error: ArmError) -> ErrorClass:
    if error.status == 429:
        return ErrorClass.THROTTLED
    if error.status is not None and error.status >= 500:
        return ErrorClass.RETRYABLE
    known = _BY_CODE.get(error.code)
    if known is not None:
        return known[0]
    if error.status == 404:
        return ErrorClass.NOT_FOUND
    if error.status == 400:
        return ErrorClass.NEEDS_USER
    return ErrorClass.RETRYABLE


def outcome_for(error: ArmError, *, action: str) -> outcome.Outcome:
    """The Ready=False outcome for an error no reconciler had a plan for. `action` says what was being
    done ("creating the identity"), so the message reads as a sentence an SRE can act on."""
    message = f"{action}: {error}"
    if error.request_id:
        message += f" (request id {error.request_id})"
    error_class = classify(error)
    known = _BY_CODE.get(error.code)
    if known is not None and error_class is known[0]:
        _, reason, retry = known
        return outcome.not_ready(reason, message, retry_after=retry)
    match error_class:
        case ErrorClass.THROTTLED:
            return outcome.not_ready(
                reasons.THROTTLED, message, retry_after=error.retry_after or THROTTLE_DEFAULT_SECONDS
            )
        case ErrorClass.NEEDS_USER:
            return outcome.not_ready(reasons.AZURE_REJECTED, message)
        case ErrorClass.NOT_FOUND:
            return outcome.not_ready(reasons.RESOURCE_NOT_FOUND, message)
        case ErrorClass.RETRYABLE:
            return outcome.not_ready(
                reasons.AZURE_ERROR, message, retry_after=error.retry_after or DEFAULT_RETRY_SECONDS
            )
