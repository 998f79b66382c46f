from __future__ import annotations

import importlib
import io
import json
from contextlib import redirect_stderr
from pathlib import Path

import pydantic
import pytest
import structlog

from entrypoints.bootstrap import KINDS, build, kind_options, usd_like
from entrypoints.logs import configure_logging, redact
from entrypoints.settings import Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", ["domain", "application", "adapters", "entrypoints"])
def test_layer_packages_resolve_to_this_repository_not_a_namesake_on_pypi(package: str) -> None:
    module = importlib.import_module(package)
    assert Path(module.__file__ or "").resolve().parent == REPO / package


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_environ({})
    assert settings.database_url is None
    assert settings.csv_source_path == str(REPO / "data" / "*.csv")
    assert settings.etl_schedule_minutes == 5
    assert settings.api_port == 8000
    assert settings.data_dir == REPO / ".kaspero"  # the project's, wherever a command runs


def test_environment_values_are_parsed_once_and_typed() -> None:
    settings = Settings.from_environ(
        {
            "DATABASE_URL": "postgresql://u:p@h/db",
            "ETL_SOURCES": " CSV , csv",
            "ETL_SCHEDULE_MINUTES": "0.5",
            "API_PORT": "9001",
            "LOG_LEVEL": "debug",
            "LOG_FORMAT": "CONSOLE",
            "KASPERO_DATA_DIR": "/var/lib/kaspero",
            "ETL_FAIL_AFTER": "",
        }
    )
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://u:p@h/db"
    assert "p@h" not in repr(settings)
    assert settings.etl_sources == ("csv", "csv")
    assert (settings.etl_schedule_minutes, settings.api_port) == (0.5, 9001)
    assert (settings.log_level, settings.log_format) == ("DEBUG", "console")
    assert settings.data_dir == Path("/var/lib/kaspero")
    assert settings.etl_fail_after is None


def test_an_unknown_source_kind_is_refused_naming_the_registered_ones() -> None:
    # the kinds are the composition root's registry: settings hold names, the build checks them
    settings = Settings.from_environ({"ETL_SOURCES": "csv,ftp"})
    with pytest.raises(SettingsError, match=f"unknown source ftp; known: {', '.join(KINDS)}$"):
        build(settings, in_memory=True)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"API_PORT": "http"}, "API_PORT"),
        ({"ETL_SCHEDULE_MINUTES": "0"}, "ETL_SCHEDULE_MINUTES"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_environ(environ)


def test_url_passwords_are_redacted_in_text() -> None:
    assert (
        redact("connect postgresql://kaspero:s3cr3t@db:5432/k failed")
        == "connect postgresql://kaspero:***@db:5432/k failed"
    )
    assert (
        redact("postgresql://postgres:@/postgres?host=/tmp") == "postgresql://postgres:@/postgres?host=/tmp"
    )


def test_log_lines_are_json_and_carry_no_secret() -> None:
    configure_logging("INFO", "json")
    stream = io.StringIO()
    with redirect_stderr(stream):
        structlog.reset_defaults()
        configure_logging("INFO", "json")
        structlog.get_logger("t").info("connecting", url="postgresql://u:hunter2@db/k", api_key="abc123")
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["event"] == "connecting"
    assert line["level"] == "info"
    assert "timestamp" in line
    assert "hunter2" not in stream.getvalue()
    assert "abc123" not in stream.getvalue()


def test_every_command_explains_its_options_environment_and_exit_codes() -> None:
    import argparse

    from entrypoints.cli import HANDLERS
    from entrypoints.command_line import build_parser

    parser = build_parser(HANDLERS, tuple(KINDS))
    seen = 0

    def walk(node: argparse.ArgumentParser) -> None:
        nonlocal seen
        subs = [action for action in node._actions if isinstance(action, argparse._SubParsersAction)]
        if not subs:
            seen += 1
            text = node.format_help()
            assert "environment:" in text, node.prog
            assert "exit codes: 0 success" in text, node.prog
            for action in node._actions:
                if action.option_strings and action.dest != "help":
                    assert action.help, f"{node.prog} {action.option_strings} has no help"
            for action in node._actions:
                if not action.option_strings and action.dest not in ("help",):
                    assert action.help, f"{node.prog} {action.dest} has no help"
            return
        for child in subs[0].choices.values():
            walk(child)

    walk(parser)
    assert seen == len(HANDLERS)


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    from entrypoints.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("kaspero ")


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (REPO / "README.md").read_text()
    names = [
        "KASPERO_DATA_DIR" if name == "data_dir" else name.upper()
        for name in Settings.model_fields
        if name != "source_variables"  # not a variable: where a kind's own `<KIND>_*` settings are kept
    ]
    assert [name for name in names if f"`{name}`" not in readme] == []


class _Options(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    base_url: str = "https://example.invalid"
    rate_limit_per_minute: int = pydantic.Field(default=60, ge=1)


def test_a_kind_reads_its_own_variables_and_a_wrong_one_is_named() -> None:
    settings = Settings.from_environ({"ACME_BASE_URL": "http://127.0.0.1:1", "ACME_RATE_LIMIT_PER_MINUTE": "5",
                                      "OTHER_THING": "x"})  # fmt: skip
    options = kind_options(settings, "acme", _Options)
    assert (options.base_url, options.rate_limit_per_minute) == ("http://127.0.0.1:1", 5)
    assert "OTHER_THING" not in repr(settings)  # kept, never shown
    with pytest.raises(
        SettingsError, match="ACME_RATE_LIMIT_PER_MINUTE: Input should be greater than or equal to 1"
    ):
        kind_options(Settings.from_environ({"ACME_RATE_LIMIT_PER_MINUTE": "0"}), "acme", _Options)
    with pytest.raises(SettingsError, match="ACME_BASEURL: Extra inputs are not permitted"):
        kind_options(Settings.from_environ({"ACME_BASEURL": "http://x"}), "acme", _Options)
    with pytest.raises(SettingsError, match="ACME_QUOTES: BTC is not in USD_QUOTES"):
        usd_like(settings, "acme", ["USDT", "BTC"])
    assert Settings.from_environ({"ETL_SCHEDULE_MINUTES_ACME": "2"}).schedule_minutes("acme") == 2
