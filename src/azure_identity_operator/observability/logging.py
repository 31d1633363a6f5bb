"""Log output: plain text or one JSON object per line, with the object a line concerns, and never a secret.

Every line about a custom resource names it (`object.kind`, `object.namespace`, `object.name`): kopf's
per-object loggers carry the reference, and lines logged deeper down (the ARM pipeline, the SDK) get it
from `bind_object`, a context variable the handler runtime sets around each reconcile, which asyncio
copies into every task the reconcile starts, or else from the object provider (`set_object_provider`):
the kopf handler in progress, for handlers outside the runtime's reconcile and cleanup (the dependants'
wake-up on watch events, for one).
Lines about an ARM response carry `arm_request_id`.

Redaction is the last step of formatting, in both formats: bearer tokens, JWTs (access tokens, the
projected service-account token), OAuth form fields (`client_secret=`, `client_assertion=`) and the
exact values of the credential variables in the environment are replaced by `[REDACTED]`, whatever logger
or library produced the line.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, TextIO

REDACTED = "[REDACTED]"

LogFormat = Literal["text", "json"]

SECRET_ENVIRONMENT_VARIABLES = ("AZURE_CLIENT_SECRET", "IDENTITY_HEADER", "MSI_SECRET", "AZURE_PASSWORD")
"""Variables whose values are credentials: their exact values never appear in a log line."""

# Fields of the log record that are structured output in JSON (set with `extra=`); anything else a
# library attaches to a record (kopf's settings object, for one) is left out.
STRUCTURED_FIELDS = (
    "arm_request_id",
    "arm_operation",
    "http_method",
    "status_code",
    "duration_seconds",
    "retry_after_seconds",
)

_PATTERNS = (
    # JWTs: three base64url parts, the first two JSON objects ("eyJ" is base64 of '{"').
    re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    # Authorization headers and their values, whatever the token looks like.
    re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/=-]{8,}"),
    # OAuth form or JSON fields that carry credentials.
    re.compile(
        r"(?i)(?<=client_secret=)[^&\s\"']+|(?<=client_assertion=)[^&\s\"']+"
        r"|(?<=access_token=)[^&\s\"']+|(?<=refresh_token=)[^&\s\"']+"
    ),
    re.compile(
        r"(?i)(?<=[\"']access_token[\"']: [\"'])[^\"']+|(?<=[\"']access_token[\"']:[\"'])[^\"']+"
        r"|(?<=[\"']client_secret[\"']: [\"'])[^\"']+|(?<=[\"']client_secret[\"']:[\"'])[^\"']+"
    ),
)


@dataclasses.dataclass(frozen=True)
class ObjectRef:
    kind: str
    namespace: str | None
    name: str

    def as_dict(self) -> dict[str, str]:
        found = {"kind": self.kind, "name": self.name}
        if self.namespace:
            found["namespace"] = self.namespace
        return found


_current_object: contextvars.ContextVar[ObjectRef | None] = contextvars.ContextVar(
    "azure_identity_operator_object", default=None
)


@contextlib.contextmanager
def bind_object(kind: str, namespace: str | None, name: str) -> Iterator[ObjectRef]:
    """Within the block (and tasks started in it), log lines concern this object."""
    ref = ObjectRef(kind=kind, namespace=namespace, name=name)
    token = _current_object.set(ref)
    try:
        yield ref
    finally:
        _current_object.reset(token)


ObjectProvider = Callable[[], ObjectRef | None]
_object_providers: list[ObjectProvider] = []


def set_object_provider(provider: ObjectProvider | None) -> None:
    """Where lines outside `bind_object` find their object: the framework's handler in progress (set once
    by `__main__`, so this package needs no framework import). `None` removes it."""
    _object_providers[:] = [provider] if provider is not None else []


class Redactor:
    """Replaces secrets in text: known patterns, plus the exact values it was given."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Short values would redact ordinary words; real secrets are long.
        self._secrets = sorted({secret for secret in secrets if len(secret) >= 8}, key=len, reverse=True)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Redactor:
        env = os.environ if env is None else env
        return cls(env.get(name, "") for name in SECRET_ENVIRONMENT_VARIABLES)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(REDACTED, text)
        return text


def object_of(record: logging.LogRecord) -> dict[str, str] | None:
    """The object a record concerns: kopf's reference on the record, else the bound one."""
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, Mapping) and ref.get("name"):
        found = {key: str(ref[key]) for key in ("kind", "namespace", "name") if ref.get(key)}
        return found
    bound = _current_object.get()
    if bound is None and _object_providers:
        try:
            bound = _object_providers[0]()
        except Exception:
            bound = None
    return bound.as_dict() if bound is not None else None


class TextFormatter(logging.Formatter):
    """`time level logger [namespace/kind/name] message key=value...`, redacted."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ref = object_of(record)
        if ref is not None:
            where = "/".join(
                part for part in (ref.get("namespace"), ref.get("kind"), ref.get("name")) if part
            )
            head, _, tail = text.partition(": ")
            text = f"{head}: [{where}] {tail}"
        fields = " ".join(
            f"{name}={getattr(record, name)}" for name in STRUCTURED_FIELDS if hasattr(record, name)
        )
        if fields:
            text = f"{text} ({fields})"
        return self._redact(text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, object, structured fields, exception."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": self._redact(record.getMessage()),
        }
        ref = object_of(record)
        if ref is not None:
            entry["object"] = ref
        for name in STRUCTURED_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = self._redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = self._redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self._redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def make_formatter(log_format: LogFormat, redactor: Redactor | None = None) -> logging.Formatter:
    redactor = redactor if redactor is not None else Redactor.from_environment()
    return JsonFormatter(redactor) if log_format == "json" else TextFormatter(redactor)


class _OperatorHandler(logging.StreamHandler[TextIO]):
    """Marks the handler `configure` installed, so a second call replaces it instead of adding one."""


def configure(*, log_format: LogFormat, verbose: bool, stream: TextIO | None = None) -> None:
    """Route every logger through one redacting handler on stderr, in the chosen format."""
    handler = _OperatorHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [existing for existing in root.handlers if not isinstance(existing, _OperatorHandler)]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        # azure-core logs every request and response at INFO; the ARM policy's own lines say what matters.
        logging.getLogger("azure").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        # kopf only feeds watch events to the controller here: its per-handler bookkeeping ("Handler
        # 'on_event' succeeded", start-up activities) says nothing an operator of the operator needs.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("kopf.activities").setLevel(logging.WARNING)
        logging.getLogger("kopf._core.engines.activities").setLevel(logging.WARNING)
