"""Runs the Flux health check expressions documented in docs/monitoring.md the way Flux's kustomize-controller
does (RFC 0009): an `observedGeneration` behind `metadata.generation` is InProgress; otherwise `inProgress`,
`failed` and `current` are evaluated in that order on the object's fields, the first true one wins, and
none true is InProgress. CEL is evaluated by cel-python."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import celpy
import celpy.adapter
import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"
MARKER = "<!-- flux-health-check-exprs -->"


def documented_expressions(kind: str = "UserAssignedIdentity") -> dict[str, str]:
    """The `healthCheckExprs` entry for `kind` from the YAML block that follows the marker in the doc."""
    text = DOC.read_text()
    block = re.search(re.escape(MARKER) + r"\s*```yaml\n(.*?)```", text, re.DOTALL)
    assert block is not None, f"no YAML block after {MARKER} in {DOC}"
    kustomization = yaml.safe_load(block.group(1))
    for entry in kustomization["spec"]["healthCheckExprs"]:
        if entry["kind"] == kind:
            return {key: entry[key] for key in ("inProgress", "failed", "current") if key in entry}
    raise AssertionError(f"no healthCheckExprs entry for {kind}")


class FluxHealthCheck:
    def __init__(self, expressions: Mapping[str, str] | None = None) -> None:
        environment = celpy.Environment()
        exprs = expressions if expressions is not None else documented_expressions()
        self._programs = [
            (status, environment.program(environment.compile(exprs[key])))
            for key, status in (("inProgress", "InProgress"), ("failed", "Failed"), ("current", "Current"))
            if key in exprs
        ]

    def __call__(self, obj: Mapping[str, Any]) -> str:
        observed = (obj.get("status") or {}).get("observedGeneration")
        if observed is not None and observed != (obj.get("metadata") or {}).get("generation"):
            return "InProgress"
        activation = {key: celpy.adapter.json_to_cel(value) for key, value in obj.items()}
        for status, program in self._programs:
            result = program.evaluate(activation)
            if isinstance(result, Exception):
                raise result
            if bool(result):
                return status
        return "InProgress"


def kstatus(obj: Mapping[str, Any]) -> str:
    """kstatus' generic rules for a custom resource, as Flux applies them without health check expressions
    (sigs.k8s.io/cli-utils/pkg/kstatus): deletion, then a stale `observedGeneration`, then the
    abnormal-true conditions `Reconciling` (InProgress) and `Stalled` (Failed); otherwise Current."""
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if metadata.get("deletionTimestamp"):
        return "Terminating"
    observed = status.get("observedGeneration")
    if observed is not None and observed != metadata.get("generation"):
        return "InProgress"
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
    if conditions.get("Reconciling") == "True":
        return "InProgress"
    if conditions.get("Stalled") == "True":
        return "Failed"
    return "Current"
