"""Decoding of Kubernetes protobuf request bodies for the built-in kinds kubectl's generator commands send
that way (`kubectl create namespace|configmap|secret|serviceaccount|token`).

kubectl encodes typed objects as `k8s\\x00` + a `runtime.Unknown` envelope whose `raw` field holds the
object message; client-go does not fall back to JSON when a server refuses protobuf, so the emulator has to
read it. Only the messages listed in `MESSAGES` are known; others are answered with 415. Responses are
always JSON (clients list it in Accept).
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

from kube_emulator.errors import ApiError

MAGIC = b"k8s\x00"

# field number -> (JSON name, type). Types: string, bytes, int, bool, time, msg:Name, map:string,
# map:bytes, list:string, list:msg:Name.
MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {
        1: ("typeMeta", "msg:TypeMeta"),
        2: ("raw", "raw"),
        3: ("contentEncoding", "string"),
        4: ("contentType", "string"),
    },
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": {
        1: ("name", "string"),
        2: ("generateName", "string"),
        3: ("namespace", "string"),
        5: ("uid", "string"),
        6: ("resourceVersion", "string"),
        7: ("generation", "int"),
        8: ("creationTimestamp", "time"),
        9: ("deletionTimestamp", "time"),
        10: ("deletionGracePeriodSeconds", "int"),
        11: ("labels", "map:string"),
        12: ("annotations", "map:string"),
        13: ("ownerReferences", "list:msg:OwnerReference"),
        14: ("finalizers", "list:string"),
    },
    "OwnerReference": {
        1: ("kind", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
        6: ("controller", "bool"),
        7: ("blockOwnerDeletion", "bool"),
    },
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
    "ConfigMap": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("data", "map:string"),
        3: ("binaryData", "map:bytes"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("data", "map:bytes"),
        3: ("type", "string"),
        4: ("stringData", "map:string"),
        5: ("immutable", "bool"),
    },
    "Namespace": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("spec", "msg:NamespaceSpec"),
        3: ("status", "msg:NamespaceStatus"),
    },
    "NamespaceSpec": {1: ("finalizers", "list:string")},
    "NamespaceStatus": {1: ("phase", "string")},
    "ServiceAccount": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("secrets", "list:msg:ObjectReference"),
        3: ("imagePullSecrets", "list:msg:LocalObjectReference"),
        4: ("automountServiceAccountToken", "bool"),
    },
    "ObjectReference": {
        1: ("kind", "string"),
        2: ("namespace", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
        6: ("resourceVersion", "string"),
        7: ("fieldPath", "string"),
    },
    "LocalObjectReference": {1: ("name", "string")},
    "TokenRequest": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:TokenRequestSpec")},
    "TokenRequestSpec": {
        1: ("audiences", "list:string"),
        3: ("boundObjectRef", "msg:BoundObjectReference"),
        4: ("expirationSeconds", "int"),
    },
    "BoundObjectReference": {
        1: ("kind", "string"),
        2: ("apiVersion", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
    },
    "MapEntry": {1: ("key", "string"), 2: ("value", "raw")},
}


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    found: list[tuple[int, int | bytes]] = []
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type == 2:
            length, position = _varint(data, position)
            value = data[position : position + length]
            position += length
        elif wire_type == 1:
            value = int.from_bytes(data[position : position + 8], "little")
            position += 8
        elif wire_type == 5:
            value = int.from_bytes(data[position : position + 4], "little")
            position += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        found.append((number, value))
    return found


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _decode(data: bytes, message: str) -> dict[str, Any]:
    spec = MESSAGES[message]
    result: dict[str, Any] = {}
    for number, raw in _fields(data):
        if number not in spec:
            continue
        name, kind = spec[number]
        if kind == "string":
            result[name] = bytes(raw).decode() if isinstance(raw, bytes) else str(raw)
        elif kind == "raw":
            result[name] = raw
        elif kind == "bytes":
            result[name] = base64.b64encode(bytes(raw) if isinstance(raw, bytes) else b"").decode()
        elif kind == "int":
            result[name] = _signed(raw) if isinstance(raw, int) else 0
        elif kind == "bool":
            result[name] = bool(raw)
        elif kind == "time" and isinstance(raw, bytes):
            seconds = _decode(raw, "Time").get("seconds", 0)
            moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
            result[name] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif kind.startswith("msg:") and isinstance(raw, bytes):
            result[name] = _decode(raw, kind[4:])
        elif kind.startswith("list:") and isinstance(raw, bytes):
            item_kind = kind[5:]
            item = raw.decode() if item_kind == "string" else _decode(raw, item_kind[4:])
            result.setdefault(name, []).append(item)
        elif kind.startswith("map:") and isinstance(raw, bytes):
            entry = _decode(raw, "MapEntry")
            value = bytes(entry.get("value", b""))
            rendered = base64.b64encode(value).decode() if kind == "map:bytes" else value.decode()
            result.setdefault(name, {})[entry.get("key", "")] = rendered
    # Go's JSON encoding omits empty fields; protobuf writes them, so drop them to match what JSON says
    return {key: value for key, value in result.items() if value not in ("", 0, False) or key == "immutable"}


def decode_object(body: bytes) -> dict[str, Any]:
    """A Kubernetes protobuf body as the JSON object it stands for."""
    if not body.startswith(MAGIC):
        raise ApiError(415, "UnsupportedMediaType", "protobuf body without the k8s envelope")
    try:
        envelope = _decode(body[len(MAGIC) :], "Unknown")
        type_meta = envelope.get("typeMeta") or {}
        kind = type_meta.get("kind", "")
        if kind not in MESSAGES or kind in ("Unknown", "TypeMeta", "MapEntry"):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"protobuf bodies of kind {kind!r} are not understood: send application/json",
            )
        obj = _decode(bytes(envelope.get("raw", b"")), kind)
    except ValueError as error:
        raise ApiError(400, "BadRequest", f"the protobuf body could not be decoded: {error}") from error
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **obj}
