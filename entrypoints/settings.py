"""Settings, read once from the environment and passed down as plain values.

This is the only module that reads `os.environ`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pydantic

from entrypoints.api.clients import Network, parse_networks

# defaults are anchored to the project, not to the directory a command is run from; a path a
# user sets is taken as given (relative to where they run it)
PROJECT = Path(__file__).resolve().parent.parent


# between two DATABASE_READ_URL URLs: a comma before a new URL, never one inside a URL (libpq's
# multi-host `postgresql://a,b/db`)
_READ_URL_SEPARATOR = re.compile(r",\s*(?=postgres(?:ql)?://)")


# a source kind's own setting: `<KIND>_<NAME>` (BINANCE_BASE_URL), or its schedule
_SOURCE_VARIABLE = re.compile(r"^[A-Z][A-Z0-9]*_[A-Z0-9_]+$")


class SettingsError(ValueError):
    """The environment holds a value Kaspero cannot use; the message names the variable."""


class Settings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    database_url: pydantic.SecretStr | None = None
    # hot standbys the API reads from (one or more URLs, comma-separated); never logged
    database_read_url: pydantic.SecretStr | None = None
    replica_max_lag_seconds: float = pydantic.Field(default=60.0, gt=0)
    data_dir: Path = PROJECT / ".kaspero"  # from KASPERO_DATA_DIR
    csv_source_path: str = str(PROJECT / "data" / "*.csv")
    rss_source_url: str = str(PROJECT / "data" / "crypto_news.xml")
    asset_crossref_path: Path = PROJECT / "data" / "reference" / "asset_crossref.csv"
    csv_batch_size: int = pydantic.Field(default=5000, ge=1, le=1_000_000)
    csv_options_path: Path | None = None  # unset: data/csv_options.toml when that file exists
    csv_workers: int | None = pydantic.Field(
        default=None, ge=1, le=64
    )  # unset: the cores this process may use
    csv_max_record_bytes: int = pydantic.Field(default=1 << 20, ge=1024, le=1 << 30)
    # batches of clean bars read and normalized as columns (adapters/feeds/csv_block.py); false:
    # every row one by one (the same records, slower)
    csv_columnar: bool = True
    usd_quotes: tuple[str, ...] = ("USD", "USDT", "USDC", "BUSD", "DAI", "TUSD", "FDUSD", "USDP")
    consensus_window_minutes: float = pydantic.Field(default=15, gt=0, le=525_600)
    plausible_max_price_usd: Decimal = pydantic.Field(default=Decimal("1e12"), gt=0)
    plausible_min_price_usd: Decimal = pydantic.Field(default=Decimal("1e-18"), ge=0)
    plausible_max_market_cap_usd: Decimal = pydantic.Field(default=Decimal("1e15"), gt=0)
    plausible_max_volume_usd: Decimal = pydantic.Field(default=Decimal("1e16"), gt=0)
    plausible_file_deviation: Decimal = pydantic.Field(default=Decimal("0.5"), gt=0)
    plausible_bar_deviation: Decimal = pydantic.Field(default=Decimal("0.25"), gt=0)
    # a source's candle further than this (percent) from the bucket's median close of three
    # sources or more is `suspect` (left out of the consensus); two that far apart are `disputed`
    suspect_bar_pct: Decimal = pydantic.Field(default=Decimal(10), gt=0, le=1000)
    history_retention_days: int | None = pydantic.Field(default=None, ge=1, le=100_000)
    etl_sources: tuple[str, ...] | None = None
    etl_schedule_minutes: float = pydantic.Field(default=5.0, gt=0)
    etl_schedule_minutes_coinpaprika: float | None = pydantic.Field(default=None, gt=0)
    etl_schedule_minutes_coingecko: float | None = pydantic.Field(default=None, gt=0)
    etl_schedule_minutes_csv: float | None = pydantic.Field(default=None, gt=0)
    etl_schedule_minutes_rss: float | None = pydantic.Field(default=None, gt=0)
    etl_schedule_jitter_seconds: float | None = pydantic.Field(default=None, ge=0)
    run_abandon_grace_seconds: float = pydantic.Field(default=60, ge=0)
    etl_fail_after: int | None = pydantic.Field(default=None, ge=0)
    rate_limit_requests_per_minute: int = pydantic.Field(default=60, ge=1)
    coinpaprika_base_url: str = "https://api.coinpaprika.com/v1"
    coingecko_base_url: str = "https://api.coingecko.com/api/v3"
    api_key: pydantic.SecretStr | None = None
    coinpaprika_api_key: pydantic.SecretStr | None = None
    coingecko_api_key: pydantic.SecretStr | None = None
    coinpaprika_rate_limit_per_minute: int | None = pydantic.Field(default=None, ge=1)
    coingecko_rate_limit_per_minute: int = pydantic.Field(default=25, ge=1)
    coinpaprika_max_tickers: int = pydantic.Field(default=25_000, ge=1, le=1_000_000)
    coingecko_per_page: int = pydantic.Field(default=250, ge=1, le=250)
    coingecko_max_pages: int = pydantic.Field(default=4, ge=1, le=1000)
    coingecko_resume_window_minutes: float = pydantic.Field(default=10, ge=0)
    http_timeout_seconds: float = pydantic.Field(default=10, gt=0, le=300)
    http_max_response_mb: int = pydantic.Field(default=50, ge=1, le=1024)
    http_deadline_seconds: float = pydantic.Field(default=60, gt=0, le=3600)
    feed_max_mb: int = pydantic.Field(default=10, ge=1, le=512)
    http_retry_attempts: int = pydantic.Field(default=5, ge=1, le=20)
    http_retry_max_seconds: float = pydantic.Field(default=60, gt=0)
    http_retry_after_max_seconds: float = pydantic.Field(default=60, ge=0)
    prometheus_multiproc_dir: Path | None = None
    api_keys: pydantic.SecretStr | None = None
    api_read_requires_key: bool = False
    divergence_threshold_pct: float = pydantic.Field(default=5.0, gt=0, le=100)
    drift_auto_map_confidence: float = pydantic.Field(default=0.8, ge=0, le=1)
    drift_removal_share: float = pydantic.Field(default=0.5, gt=0, le=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] | None = None  # unset: console on a terminal, else json
    progress_log_seconds: float = pydantic.Field(default=5, gt=0, le=3600)
    api_host: str = "127.0.0.1"
    api_port: int = pydantic.Field(default=8000, ge=1, le=65535)
    web_concurrency: int = pydantic.Field(default=2, ge=1, le=64)
    api_threads: int = pydantic.Field(default=8, ge=1, le=64)
    db_pool_max_size: int = pydantic.Field(default=4, ge=1, le=100)
    db_pool_timeout_seconds: float = pydantic.Field(default=15, gt=0, le=600)
    api_db_timeout_seconds: float = pydantic.Field(default=2, gt=0, le=60)
    api_statement_timeout_ms: int = pydantic.Field(default=5000, ge=100, le=600_000)
    api_request_budget_ms: int = pydantic.Field(default=5000, ge=100, le=600_000)
    metrics_cache_seconds: float = pydantic.Field(default=15.0, ge=0, le=3600)
    trusted_proxies: str = ""
    # how far back the providers' plans reach for history (0: no limit); the free plans: a year
    coingecko_history_days: int = pydantic.Field(default=365, ge=0, le=100_000)
    coinpaprika_history_days: int = pydantic.Field(default=365, ge=0, le=100_000)
    # history kept complete by the schedulers: every HISTORY_KEEP_MINUTES one replica plans a
    # gaps-only backfill of these assets over the last HISTORY_KEEP_DAYS (none while one is unfinished)
    history_keep_symbols: tuple[str, ...] = ()
    history_keep_intervals: tuple[str, ...] = ("1d",)
    history_keep_sources: tuple[str, ...] | None = None  # unset: the enabled kinds with history
    history_keep_days: int = pydantic.Field(default=365, ge=1, le=100_000)
    history_keep_minutes: float = pydantic.Field(default=60, gt=0)
    # the variables no field above reads, for the source kinds that declare their own settings
    # (`BINANCE_BASE_URL`, ...): read by the kind's registration; never shown (they may be keys)
    source_variables: Mapping[str, str] = pydantic.Field(default_factory=dict, repr=False)

    @pydantic.field_validator("etl_sources", mode="before")
    @classmethod
    def _split_sources(cls, value: object) -> object:
        if isinstance(value, str):
            names = tuple(part.strip().lower() for part in value.split(",") if part.strip())
            return names or None
        return value

    @pydantic.field_validator(
        "history_keep_symbols", "history_keep_intervals", "history_keep_sources", mode="before"
    )
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @pydantic.field_validator("history_keep_intervals")
    @classmethod
    def _intervals(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        odd = [item for item in value if item not in ("5m", "1h", "1d")]
        if odd:
            raise ValueError(f"{', '.join(odd)}: each interval must be 5m, 1h or 1d")
        return value

    @pydantic.field_validator("usd_quotes", mode="before")
    @classmethod
    def _split_quotes(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().upper() for part in value.split(",") if part.strip())
        return value

    def csv_worker_count(self) -> int:
        """`CSV_WORKERS`, else the number of cores this process may run on."""
        return self.csv_workers or len(os.sched_getaffinity(0))

    def csv_options_file(self) -> Path | None:
        """`CSV_OPTIONS_PATH`, else `data/csv_options.toml` when it exists (none otherwise)."""
        if self.csv_options_path is not None:
            return self.csv_options_path
        default = PROJECT / "data" / "csv_options.toml"
        return default if default.exists() else None

    @pydantic.field_validator("coinpaprika_base_url", "coingecko_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    def rss_feeds(self) -> list[str]:
        """`RSS_SOURCE_URL`: comma-separated feed URLs or file paths."""
        return [feed.strip() for feed in self.rss_source_url.split(",") if feed.strip()]

    def schedule_minutes(self, kind: str) -> float:
        """A source kind's interval: `ETL_SCHEDULE_MINUTES_<KIND>`, else `ETL_SCHEDULE_MINUTES`."""
        own = getattr(self, f"etl_schedule_minutes_{kind}", None)
        if own is None:
            name = f"ETL_SCHEDULE_MINUTES_{kind.upper()}"
            text = self.source_variables.get(name)
            try:
                own = float(text) if text else None
            except ValueError:
                raise SettingsError(f"invalid configuration: {name}: not a number: {text!r}") from None
            if own is not None and not own > 0:
                raise SettingsError(f"invalid configuration: {name}: must be above 0")
        return float(own) if own is not None else self.etl_schedule_minutes

    @pydantic.field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)  # refused at start, naming the bad entry
        return value

    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        """`TRUSTED_PROXIES`: the proxies whose `X-Forwarded-Proto` / `-For` count."""
        return parse_networks(self.trusted_proxies)

    def database_read_urls(self) -> list[str]:
        """`DATABASE_READ_URL`: one URL or several, comma-separated (a comma inside one URL, as
        in a libpq multi-host `postgresql://a,b/db`, is not a separator: only one followed by
        a new `postgres://` or `postgresql://` is)."""
        text = self.database_read_url.get_secret_value() if self.database_read_url else ""
        return [part.strip() for part in _READ_URL_SEPARATOR.split(text) if part.strip()]

    @pydantic.field_validator("database_read_url")
    @classmethod
    def _read_urls(cls, value: pydantic.SecretStr | None) -> pydantic.SecretStr | None:
        text = value.get_secret_value() if value else ""
        for part in _READ_URL_SEPARATOR.split(text):
            if part.strip() and not part.strip().startswith(("postgres://", "postgresql://")):
                raise ValueError("each URL must start with postgresql:// (several: comma-separated)")
        return value

    def api_key_list(self) -> list[str]:
        """The keys `POST /runs` accepts: `API_KEYS`, comma-separated."""
        text = self.api_keys.get_secret_value() if self.api_keys else ""
        return [key.strip() for key in text.split(",") if key.strip()]

    def key_for(self, source: str) -> str | None:
        """The provider key: `<SOURCE>_API_KEY`, else `API_KEY`, else none."""
        specific = {"coinpaprika": self.coinpaprika_api_key, "coingecko": self.coingecko_api_key}.get(source)
        own = self.source_variables.get(f"{source.upper()}_API_KEY")
        if specific is None and own:
            return own
        key = specific or self.api_key
        return key.get_secret_value() if key else None

    def kind_variables(self, kind: str) -> dict[str, str]:
        """A source kind's own settings, `<KIND>_<NAME>`, by lower-case name (`base_url`)."""
        prefix = f"{kind.upper()}_"
        return {
            name.removeprefix(prefix).lower(): value
            for name, value in self.source_variables.items()
            if name.startswith(prefix)
        }

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
        fields: dict[str, Any] = {
            name: source[name.upper()]
            for name in cls.model_fields
            if name != "data_dir" and source.get(name.upper(), "").strip() != ""
        }
        if "data_dir" not in fields and source.get("KASPERO_DATA_DIR", "").strip():
            fields["data_dir"] = source["KASPERO_DATA_DIR"]
        known = {name.upper() for name in cls.model_fields} | {"KASPERO_DATA_DIR"}
        fields["source_variables"] = {
            name: value
            for name, value in source.items()
            if _SOURCE_VARIABLE.match(name) and name not in known and value.strip()
        }
        try:
            return cls.model_validate(fields)
        except pydantic.ValidationError as ex:
            problems = "; ".join(f"{str(error['loc'][0]).upper()}: {error['msg']}" for error in ex.errors())
            raise SettingsError(f"invalid configuration: {problems}") from None
