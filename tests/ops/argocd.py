"""Runs the shipped Argo CD health check (docs/argocd-health.lua) the way Argo CD does: the script is the
body of a function of the global `obj`, the live object as Lua tables, returning `{status, message}`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lupa import LuaRuntime  # type: ignore[import-untyped]

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "argocd-health.lua"


@dataclasses.dataclass(frozen=True)
class Health:
    status: str
    message: str


class ArgoHealthCheck:
    def __init__(self, script: Path = SCRIPT) -> None:
        self._lua = LuaRuntime(unpack_returned_tuples=True)
        self._check = self._lua.eval("function(obj) " + script.read_text() + "\nend")

    def __call__(self, obj: Mapping[str, Any]) -> Health:
        result = self._check(self._lua.table_from(dict(obj), recursive=True))
        return Health(status=str(result["status"]), message=str(result["message"] or ""))
