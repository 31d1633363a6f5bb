"""What every kind's spec model shares: camelCase pydantic models as in the CRDs, the deletion policy, and
`InvalidSpecError`, whose message names each field that is wrong and why (the Ready condition shows it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import pydantic
from pydantic.alias_generators import to_camel

DeletionPolicy = Literal["Delete", "Orphan"]


class InvalidSpecError(ValueError):
    """The spec cannot be acted on; the message names the field and what it expects."""


class ApiModel(pydantic.BaseModel):
    """camelCase aliases as in the CRD; unknown fields ignored (the API server prunes them anyway)."""

    model_config = pydantic.ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


ModelT = TypeVar("ModelT", bound=ApiModel)


def parse_model(model: type[ModelT], raw: Mapping[str, Any] | None) -> ModelT:
    """`raw` (an object's spec) as `model`, or `InvalidSpecError` naming every field that is wrong."""
    try:
        return model.model_validate(dict(raw or {}))
    except pydantic.ValidationError as error:
        raise InvalidSpecError(describe_validation_error(error)) from None


def describe_validation_error(error: pydantic.ValidationError) -> str:
    """`spec.resourceGroup: Field required; spec.tags.team: Input should be a valid string`."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in ("spec", *item["loc"]))
        problems.append(f"{where}: {str(item['msg']).removeprefix('Value error, ')}")
    return "; ".join(problems)
