"""The transport-neutral request and reply every ARM handler works with, plus helpers they share: JSON body
reading, api-version checks, paging with absolute `nextLink`s, and timestamps in ARM's format.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from azure_emulator.catalog import Region, find_region, location_slug
from azure_emulator.errors import ArmError, bad_request, invalid_request_content, location_not_available

GUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(value: object) -> bool:
    return isinstance(value, str) and GUID_PATTERN.match(value) is not None


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str  # normalised: single slashes, no trailing slash, caller's casing
    query: Mapping[str, str]
    body: Any  # parsed JSON, or None when the request had no body
    base_url: str  # scheme://host[:port] the caller used, for nextLink and Location headers
    caller_object_id: str
    if_match: str | None = None  # the If-Match header, for resource types with etags

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(part for part in self.path.split("/") if part)

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version")

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; ARM's InvalidRequestContent otherwise."""
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise invalid_request_content("The request body must be a JSON object")
        return self.body


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None  # JSON-serialisable; None sends no body
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Seconds the server waits before sending: models a write that takes time (federated credentials).
    delay: float = 0.0


def normalise_path(raw_path: str) -> str:
    # ARM accepts `//subscriptions/...` (PowerShell sends it) and a trailing slash.
    path = re.sub(r"/{2,}", "/", raw_path)
    if len(path) > 1:
        path = path.rstrip("/")
    return path or "/"


def parse_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid_request_content(str(error)) from error


def require_api_version(request: Request, supported: Sequence[str], *, type_name: str | None = None) -> str:
    """Check `api-version` against what the resource type supports, with ARM's error codes."""
    version = request.api_version
    if not version:
        raise bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if version.lower() in (v.lower() for v in supported):
        return version
    listed = ", ".join(supported)
    if type_name is None:
        raise bad_request(
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are '{listed}'.",
        )
    raise bad_request(
        "NoRegisteredProviderFound",
        f"No registered resource provider found for location 'global' and API version '{version}' for type "
        f"'{type_name}'. The supported api-versions are '{listed}'. The supported locations are 'eastus, "
        "eastus2, westus, westus2, westeurope, northeurope'.",
    )


MAX_TAGS = 50
MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256
_TAG_NAME_RESERVED = re.compile(r"[<>%&\\?/\x00-\x1f\x7f]")


def parse_tags(value: object) -> dict[str, str]:
    """A resource's `tags`: absent means none; anything but a string map is ARM's InvalidTag. ARM's limits
    apply: at most 50 tags, names of 1-512 characters without `< > % & \\ ? /` or control characters,
    values of at most 256 characters."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise bad_request("InvalidTag", "The tags must be an object whose values are strings.")
    tags = {str(k): v for k, v in value.items()}
    if len(tags) > MAX_TAGS:
        raise bad_request(
            "InvalidTags",
            f"Too many tags specified. Requested tag count - '{len(tags)}'. Maximum number of tags allowed - "
            f"'{MAX_TAGS}'.",
        )
    if any(not name.strip() for name in tags):
        raise bad_request(
            "InvalidTagName",
            "The tag name must be non-null, non-empty and non-whitespace only. Please provide an actual "
            "value.",
        )
    reserved = [name for name in tags if _TAG_NAME_RESERVED.search(name)]
    if reserved:
        raise bad_request(
            "InvalidTagNameCharacters",
            f"The tag names '{', '.join(reserved)}' have reserved characters '<,>,%,&,\\,?,/' or control "
            "characters.",
        )
    too_long = [name for name in tags if len(name) > MAX_TAG_NAME]
    if too_long:
        raise bad_request(
            "InvalidTagName",
            f"Tag key too large. Following tag name '{', '.join(too_long)}' exceeded the maximum length. "
            f"Maximum allowed length for tag name - '{MAX_TAG_NAME}' characters.",
        )
    long_values = [v for v in tags.values() if len(v) > MAX_TAG_VALUE]
    if long_values:
        raise bad_request(
            "InvalidTagValueLength",
            f"Tag value too large. Following tag value '{', '.join(long_values)}' exceeded the maximum "
            f"length. Maximum allowed length for tag value - '{MAX_TAG_VALUE}' characters.",
        )
    return tags


def required_location(body: Mapping[str, Any]) -> str:
    location = body.get("location")
    if not isinstance(location, str) or not location:
        raise bad_request("LocationRequired", "The location property is required for this definition.")
    return location


def offered_region(location: str, offered: tuple[Region, ...], *, resource_type: str | None) -> Region:
    """The region a create names, if the type (None: a resource group) is offered there; ARM's 400 if not.

    ARM checks this against the provider's registration before the resource provider sees the request, so
    it comes before any check of the resource itself (an existing resource's location included). What is
    stored and echoed is the region's name: a resource created in `West Europe` reads back `westeurope`.
    """
    region = find_region(location, offered)
    if region is None:
        raise location_not_available(location, [r.name for r in offered], resource_type)
    return region


def check_location_unchanged(existing: str, requested: str, *, name: str, resource_group: str) -> None:
    """A tracked resource's location is fixed at creation; a re-PUT elsewhere is a conflict."""
    if location_slug(existing) != location_slug(requested):
        raise ArmError(
            409,
            "InvalidResourceLocation",
            f"The resource '{name}' already exists in location '{existing}' in resource group "
            f"'{resource_group}'. A resource with the same name cannot be created in location "
            f"'{requested}'. Please select a new resource name.",
        )


def utc_stamp() -> str:
    """ARM's timestamp format: seven fractional digits and a `Z`."""
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}0Z"


def page(
    request: Request,
    items: Sequence[Any],
    render: Callable[[Any], dict[str, Any]],
    page_size: int,
) -> Reply:
    """One page of a list, with an absolute `nextLink` (same host, same filter) when more remain.

    The generated SDKs GET the nextLink's own scheme, host and path and re-encode its query, so the link
    must point at this emulator.
    """
    top = request.query.get("$top")
    size = page_size
    if top is not None:
        if not top.isdigit() or int(top) < 1:
            raise bad_request("InvalidParameter", f"The value '{top}' of '$top' is not valid.")
        size = min(size, int(top))
    start = 0
    token = request.query.get("$skiptoken")
    if token:
        if not token.isdigit():
            raise bad_request("InvalidSkipToken", f"The skip token '{token}' is not valid.")
        start = int(token)
    chunk = items[start : start + size]
    body: dict[str, Any] = {"value": [render(item) for item in chunk]}
    if start + size < len(items):
        query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
        query["$skiptoken"] = str(start + size)
        # ARM leaves `$` and quotes unescaped in its links (`$skiptoken=...`, `$filter=... eq '...'`).
        encoded = urlencode(query, safe="$'()")
        body["nextLink"] = f"{request.base_url}{request.path}?{encoded}"
    return Reply(200, body)


def method_not_allowed(method: str) -> ArmError:
    return ArmError(
        405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
    )


def new_operation_id() -> str:
    return str(uuid.uuid4())
