"""Pydantic types for values crossing into Kaspero, built on the domain's cleaning rules.

Shared by every source's payload models, so "1,234.50", "N/A" and "2024-01-31" mean the same
thing whatever the source.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import pydantic

from domain.cleaning import clean_text, parse_decimal, parse_int, parse_timestamp
from domain.errors import InvalidRecord, InvalidValue


def cleaned(parse: Callable[[Any], Any]) -> pydantic.BeforeValidator:
    """Run a domain parser before pydantic's own check; its refusal becomes a field error."""

    def validate(value: Any) -> Any:
        try:
            return parse(value)
        except InvalidValue as ex:
            raise ValueError(str(ex)) from ex

    return pydantic.BeforeValidator(validate)


Money = Annotated[Decimal | None, cleaned(parse_decimal)]
RequiredMoney = Annotated[Decimal, cleaned(parse_decimal)]
WholeNumber = Annotated[int | None, cleaned(parse_int)]
Text = Annotated[str | None, cleaned(clean_text)]
RequiredText = Annotated[str, cleaned(clean_text)]
Moment = Annotated[datetime | None, cleaned(parse_timestamp)]
RequiredMoment = Annotated[datetime, cleaned(parse_timestamp)]


def describe(error: pydantic.ValidationError, names: dict[str, str] | None = None) -> str:
    """`close: not a number: 'abc'; symbol: required value is missing`, naming fields as the source does."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "record"
        field = (names or {}).get(field, field)
        if item["type"] == "missing" or (item["type"].endswith("_type") and item["input"] is None):
            problems.append(f"{field}: required value is missing")
        else:
            problems.append(f"{field}: {str(item['msg']).removeprefix('Value error, ')}")
    return "; ".join(problems)


M = TypeVar("M", bound=pydantic.BaseModel)


def validated(model: type[M], payload: Any, names: dict[str, str] | None = None) -> M:
    """The payload as `model`, or `InvalidRecord` saying what is wrong, field by field."""
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as ex:
        raise InvalidRecord(describe(ex, names)) from ex
