"""The audit log: one record per API request, so tests can derive exactly which calls a client makes
(for least-privilege RBAC). Kept in memory for `GET /debug/audit` and optionally appended to a file as
JSON lines."""

from __future__ import annotations

import collections
import dataclasses
import json
from pathlib import Path
from typing import IO, Any


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    time: str
    method: str
    path: str
    query: str
    verb: str
    api_group: str
    api_version: str
    resource: str
    subresource: str
    namespace: str
    name: str
    user_agent: str
    user: str
    code: int

    def as_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "verb": self.verb,
            "apiGroup": self.api_group,
            "apiVersion": self.api_version,
            "resource": self.resource,
            "subresource": self.subresource,
            "namespace": self.namespace,
            "name": self.name,
            "userAgent": self.user_agent,
            "user": self.user,
            "code": self.code,
        }


class AuditLog:
    def __init__(self, path: Path | None, *, keep: int = 50000) -> None:
        self.records: collections.deque[AuditRecord] = collections.deque(maxlen=keep)
        self._file: IO[str] | None = path.open("a", encoding="utf-8") if path else None

    def record(self, record: AuditRecord) -> None:
        self.records.append(record)
        if self._file is not None:
            self._file.write(json.dumps(record.as_json()) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
