"""Log formatting: JSON lines with the object and ARM request ID they concern, text lines, and redaction.

Covers `observability.logging`: `bind_object` reaching lines logged in tasks started inside it, kopf's
per-object reference winning over the bound object, structured fields, and every kind of secret the
operator handles being redacted in both formats (including exception text).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from azure_identity_operator.observability import logging as operator_logging

JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL29pZGMuZXhhbXBsZSIsInN1YiI6InN5c3RlbTpzZXJ2"
    "aWNlYWNjb3VudDpkZWZhdWx0OndlYiJ9.c2lnbmF0dXJlLWJ5dGVz"
)
CLIENT_SECRET = "Xy7~q3Rk.bmT0pWz-9LsVd1Hc4Nf8Ga2Ue5Oj6Ki"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(operator_logging.JsonFormatter(operator_logging.Redactor([CLIENT_SECRET])))
    logger = logging.getLogger("tests.ops.logging")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_bound_object_even_in_tasks_started_inside(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured

    async def arm_call() -> None:
        logger.debug("ARM PUT -> 201", extra={"arm_request_id": "req-1", "status_code": 201})

    async def reconcile() -> None:
        with operator_logging.bind_object("UserAssignedIdentity", "team-a", "app"):
            await asyncio.create_task(arm_call())
        logger.info("outside")

    asyncio.run(reconcile())
    inside, outside = lines(stream)
    assert inside["object"] == {"kind": "UserAssignedIdentity", "namespace": "team-a", "name": "app"}
    assert inside["arm_request_id"] == "req-1"
    assert inside["status_code"] == 201
    assert inside["level"] == "DEBUG"
    assert inside["logger"] == "tests.ops.logging"
    assert "object" not in outside


def test_kopf_object_reference_wins_and_unknown_extras_stay_out(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    ref = {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "RoleAssignment",
        "name": "r",
        "namespace": "b",
    }
    with operator_logging.bind_object("UserAssignedIdentity", "a", "other"):
        logger.info("Handler succeeded", extra={"k8s_ref": ref, "settings": object()})
    (line,) = lines(stream)
    assert line["object"] == {"kind": "RoleAssignment", "namespace": "b", "name": "r"}
    assert "settings" not in line


@pytest.mark.parametrize(
    "message",
    [
        f"projected token {JWT}",
        "Authorization: Bearer abc.def-ghi_jkl~mno",
        f"client_id=x&client_secret={CLIENT_SECRET}&grant_type=client_credentials",
        f"client_assertion={JWT}&client_assertion_type=urn",
        '{"access_token": "opaque-token-value-1234", "expires_in": 3599}',
        f"the secret itself: {CLIENT_SECRET}",
    ],
)
def test_secrets_are_redacted_in_both_formats(message: str) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", (message,), None)
    redactor = operator_logging.Redactor([CLIENT_SECRET])
    for formatter in (operator_logging.JsonFormatter(redactor), operator_logging.TextFormatter(redactor)):
        text = formatter.format(record)
        assert operator_logging.REDACTED in text
        for secret in (JWT, CLIENT_SECRET, "abc.def-ghi_jkl~mno", "opaque-token-value-1234"):
            assert secret not in text


def test_exception_text_is_redacted_too(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise RuntimeError(f"token endpoint rejected client_secret={CLIENT_SECRET}")
    except RuntimeError:
        logger.exception("failed")
    (line,) = lines(stream)
    assert "RuntimeError" in str(line["exception"])
    assert CLIENT_SECRET not in stream.getvalue()


def test_secret_values_come_from_the_environment() -> None:
    redactor = operator_logging.Redactor.from_environment(
        {
            "AZURE_CLIENT_SECRET": CLIENT_SECRET,
            "IDENTITY_HEADER": "header-secret-42",
            "AZURE_CLIENT_ID": "id-1",
        }
    )
    assert redactor(f"a {CLIENT_SECRET} b header-secret-42 c id-1") == "a [REDACTED] b [REDACTED] c id-1"


def test_text_lines_name_the_object() -> None:
    record = logging.LogRecord("azure_identity_operator.x", logging.INFO, __file__, 1, "created", None, None)
    record.arm_request_id = "req-9"
    formatter = operator_logging.TextFormatter(operator_logging.Redactor())
    with operator_logging.bind_object("FederatedIdentityCredential", "ns", "web"):
        text = formatter.format(record)
    assert "azure_identity_operator.x: [ns/FederatedIdentityCredential/web] created" in text
    assert text.endswith("(arm_request_id=req-9)")


def test_configure_replaces_its_own_handler_only() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        operator_logging.configure(log_format="json", verbose=False, stream=io.StringIO())
        operator_logging.configure(log_format="text", verbose=True, stream=io.StringIO())
        added = [handler for handler in root.handlers if handler not in before]
        assert len(added) == 1
        assert isinstance(added[0].formatter, operator_logging.TextFormatter)
    finally:
        root.handlers[:] = before
        root.setLevel(level)
        logging.getLogger("azure").setLevel(logging.NOTSET)
        logging.getLogger("aiohttp.access").setLevel(logging.NOTSET)


def test_the_object_provider_names_lines_outside_bind_object(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    operator_logging.set_object_provider(lambda: operator_logging.ObjectRef("RoleAssignment", "ns", "reader"))
    try:
        logger.info("deleting")
        with operator_logging.bind_object("UserAssignedIdentity", "ns", "bound"):
            logger.info("reconciling")
        operator_logging.set_object_provider(lambda: 1 / 0)  # type: ignore[arg-type,return-value]
        logger.info("a failing provider names nothing")
    finally:
        operator_logging.set_object_provider(None)
    logger.info("no provider")
    deleting, reconciling, failing, plain = lines(stream)
    assert deleting["object"] == {"kind": "RoleAssignment", "namespace": "ns", "name": "reader"}
    assert reconciling["object"] == {"kind": "UserAssignedIdentity", "namespace": "ns", "name": "bound"}
    assert "object" not in failing
    assert "object" not in plain
