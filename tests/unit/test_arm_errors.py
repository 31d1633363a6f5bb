"""The one table that classifies ARM errors and maps them to Ready reasons and retries."""

import pytest

from azure_identity_operator.arm.errors import ArmError, ErrorClass, classify, outcome_for
from azure_identity_operator.status import reasons


def error(status: int | None, code: str, retry_after: float | None = None) -> ArmError:
    return ArmError(status=status, code=code, message="m", request_id="rid", retry_after=retry_after)


@pytest.mark.parametrize(
    ("status", "code", "expected_class", "expected_reason", "retries"),
    [
        (404, "ResourceGroupNotFound", ErrorClass.NEEDS_USER, reasons.RESOURCE_GROUP_NOT_FOUND, False),
        (403, "AuthorizationFailed", ErrorClass.NEEDS_USER, reasons.AUTHORIZATION_FAILED, False),
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
