"""Which object a log line written inside one of kopf's own handlers concerns (for the JSON log's `object`
field); lines written by the controller bind their object themselves (`observability.logging`)."""

from __future__ import annotations

from azure_identity_operator.observability import logging as observability_logging


def kopf_handler_object() -> observability_logging.ObjectRef | None:
    """The object of the kopf handler running in this task (a watch-event handler), if any.

    kopf keeps the cause of the handler it invokes in a context variable (its own helpers such as
    `kopf.adopt` read it); not part of kopf's documented API, so any surprise means "no object".
    """
    try:
        from kopf._core.actions.execution import cause_var
    except ImportError:
        return None
    cause = cause_var.get(None)
    body = getattr(cause, "body", None)
    if body is None:
        return None
    metadata = body.get("metadata") or {}
    name = metadata.get("name")
    if not name:
        return None
    return observability_logging.ObjectRef(
        kind=str(body.get("kind") or ""), namespace=metadata.get("namespace"), name=str(name)
    )
