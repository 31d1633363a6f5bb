"""The one table that classifies ARM errors and maps them to Ready reasons and retries."""

import pytest

from azure_identity_operator.arm.errors import ArmError, ErrorClass, classify, outcome_for
from azure_identity_operator.status import reasons


def error(status: int | None, code: str, retry_after: float | None = None) -> ArmError:
    return ArmError(status=status, code=code, message="m", request_id="rid", retry_after=retry_after)


@pytest.mark.parametrize(
    ("status", "code", "expected_class", "expected_reason", "retries"),
    [
        # A person must act, but the fix happens in Azure, where no event tells the operator: retried
        # slowly, so the object follows within minutes.
        (404, "ResourceGroupNotFound", ErrorClass.NEEDS_USER, reasons.RESOURCE_GROUP_NOT_FOUND, True),
        (403, "AuthorizationFailed", ErrorClass.NEEDS_USER, reasons.AUTHORIZATION_FAILED, True),
        (409, "ScopeLocked", ErrorClass.NEEDS_USER, reasons.AZURE_REJECTED, True),
        (404, "SubscriptionNotFound", ErrorClass.NEEDS_USER, reasons.SUBSCRIPTION_NOT_FOUND, True),
        (400, "InvalidResourceName", ErrorClass.NEEDS_USER, reasons.INVALID_SPEC, False),
        # The transport decides before the code: a token endpoint's 5xx is not a refused credential.
        (500, "AuthenticationFailed", ErrorClass.RETRYABLE, reasons.AZURE_ERROR, True),
        (503, "AuthorizationFailed", ErrorClass.RETRYABLE, reasons.AZURE_ERROR, True),
        (None, "AuthenticationFailed", ErrorClass.NEEDS_USER, reasons.AUTHORIZATION_FAILED, False),
        (None, "CredentialUnavailable", ErrorClass.RETRYABLE, reasons.AZURE_ERROR, True),
        (400, "PrincipalNotFound", ErrorClass.RETRYABLE, reasons.WAITING_FOR_PRINCIPAL, True),
        (400, "SomethingNew", ErrorClass.NEEDS_USER, reasons.AZURE_REJECTED, False),
        (404, "ResourceNotFound", ErrorClass.NOT_FOUND, reasons.RESOURCE_NOT_FOUND, False),
        (429, "SubscriptionRequestsThrottled", ErrorClass.THROTTLED, reasons.THROTTLED, True),
        (503, "ServiceUnavailable", ErrorClass.RETRYABLE, reasons.AZURE_ERROR, True),
        (None, "ConnectionError", ErrorClass.RETRYABLE, reasons.AZURE_ERROR, True),
        (
            409,
            "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
            ErrorClass.RETRYABLE,
            reasons.AZURE_ERROR,
            True,
        ),
    ],
)
def test_classification_and_outcome(
    status: int | None, code: str, expected_class: ErrorClass, expected_reason: str, retries: bool
) -> None:
    failure = error(status, code)
    assert classify(failure) is expected_class
    result = outcome_for(failure, action="creating the identity")
    assert not result.ready
    assert result.reason == expected_reason
    assert (result.retry_after is not None) is retries
    assert result.message.startswith("creating the identity: ")
    assert "request id rid" in result.message


def test_slow_retries_start_at_a_minute() -> None:
    assert outcome_for(error(403, "AuthorizationFailed"), action="x").retry_after == 60.0


def test_gone_is_one_rule() -> None:
    assert error(404, "ResourceNotFound").is_gone
    assert error(404, "SomethingElse").is_gone
    assert error(404, "ResourceGroupNotFound").is_gone
    assert error(404, "SubscriptionNotFound").is_gone
    assert not error(403, "AuthorizationFailed").is_gone
    assert not error(500, "InternalServerError").is_gone


def test_a_stale_etag_is_retried_soon() -> None:
    result = outcome_for(error(412, "PreconditionFailed"), action="attaching")
    assert classify(error(412, "PreconditionFailed")) is ErrorClass.RETRYABLE
    assert result.retry_after == 2.0


def test_throttling_honours_retry_after() -> None:
    assert outcome_for(error(429, "TooManyRequests", retry_after=17), action="x").retry_after == 17


def test_the_existing_assignment_is_named_from_a_role_assignment_exists_conflict() -> None:
    from azure_identity_operator.arm.authorization import existing_role_assignment_name

    def conflict(message: str, code: str = "RoleAssignmentExists") -> ArmError:
        return ArmError(status=409, code=code, message=message)

    named = conflict(
        "The role assignment already exists. The ID of the existing role assignment is "
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9."
    )
    assert existing_role_assignment_name(named) == "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
    assert existing_role_assignment_name(conflict("The role assignment already exists.")) is None
    assert existing_role_assignment_name(conflict(named.message, code="Conflict")) is None
