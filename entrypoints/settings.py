"""Settings, read once from the environment and passed down as plain values.

This is the only module that reads `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import pydantic

SOURCE_KINDS = ("coinpaprika", "coingecko", "csv", "rss")


class SettingsError(ValueError):
    """The environment holds a value Kaspero cannot use; the message names the variable."""


class Settings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    database_url: pydantic.SecretStr | None = None
    data_dir: Path = Path(".kaspero")  # from KASPERO_DATA_DIR
    csv_source_path: str = "data/*.csv"
    csv_batch_size: int = pydantic.Field(default=5000, ge=1, le=1_000_000)
    etl_sources: tuple[str, ...] | None = None
    etl_schedule_minutes: float = pydantic.Field(default=5.0, gt=0)
    etl_fail_after: int | None = pydantic.Field(default=None, ge=0)
    rate_limit_requests_per_minute: int = pydantic.Field(default=60, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    api_host: str = "127.0.0.1"
    api_port: int = pydantic.Field(default=8000, ge=1, le=65535)
    web_concurrency: int = pydantic.Field(default=2, ge=1, le=64)
    db_pool_max_size: int = pydantic.Field(default=4, ge=1, le=100)

    @pydantic.field_validator("etl_sources", mode="before")
    @classmethod
    def _split_sources(cls, value: object) -> object:
        if isinstance(value, str):
            names = tuple(part.strip().lower() for part in value.split(",") if part.strip())
            return names or None
        return value

    @pydantic.field_validator("etl_sources")
    @classmethod
    def _known_sources(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = sorted(set(value or ()) - set(SOURCE_KINDS))
        if unknown:
            raise ValueError(f"unknown source {', '.join(unknown)}; known: {', '.join(SOURCE_KINDS)}")
        return value

    @pydantic.field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @pydantic.field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `KEY=value` variables; empty values count as unset."""
        source = os.environ if environ is None else environ
        fields = {
            name: source[name.upper()]
            for name in cls.model_fields
            if name != "data_dir" and source.get(name.upper(), "").strip() != ""
        }
        if "data_dir" not in fields and source.get("KASPERO_DATA_DIR", "").strip():
            fields["data_dir"] = source["KASPERO_DATA_DIR"]
        try:
            return cls.model_validate(fields)
        except pydantic.ValidationError as ex:
            problems = "; ".join(f"{str(error['loc'][0]).upper()}: {error['msg']}" for error in ex.errors())
            raise SettingsError(f"invalid configuration: {problems}") from None
