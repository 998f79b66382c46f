"""Results rendered by PostgreSQL as CSV (`COPY (SELECT ...) TO STDOUT`), streamed a chunk at a
time: DataFrames are read from this text into columns with no Python object per value. The
columns are `application.tables`'s; moments leave as microseconds since the epoch, money as the
stored numeric written whole."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from psycopg import sql

from adapters.postgres.assets import history_statement
from adapters.postgres.pooling import Lender, reading
from adapters.postgres.reader import assets_named, records_where
from application.queries import DataQuery
from application.tables import HISTORY_TABLE, RECORD_TABLE
from domain.assets import HistoryQuery


def _select(columns: tuple[tuple[str, str], ...]) -> sql.Composable:
    """Each column as its kind leaves: a moment as an integer of microseconds."""
    return sql.SQL(", ").join(
        sql.SQL("(extract(epoch FROM {c}) * 1000000)::bigint AS {c}").format(c=sql.Identifier(name))
        if kind == "time"
        else sql.Identifier(name)
        for name, kind in columns
    )


# the history statement's own columns, named as the table's (in the same order)
HISTORY_NAMES = sql.SQL(", ").join(sql.Identifier(name) for name, _ in HISTORY_TABLE)
COPY_OUT = "COPY ({select}) TO STDOUT (FORMAT csv, HEADER)"


class PostgresTables:
    def __init__(self, pool: Lender) -> None:
        self._pool = pool

    def history_csv(self, asset_ids: Sequence[int], query: HistoryQuery) -> Iterator[bytes]:
        statement, params = history_statement(asset_ids, query)
        select = sql.SQL("SELECT {columns} FROM ({history}) AS h ({names})").format(
            columns=_select(HISTORY_TABLE), history=statement, names=HISTORY_NAMES
        )
        return self._copy(select, params)

    def records_csv(self, query: DataQuery) -> Iterator[bytes]:
        with reading(self._pool) as connection:
            assets = assets_named(connection, query.search) if query.search else []
        where, params = records_where(query, assets)
        select = sql.SQL("SELECT {columns} FROM unified_data {where} ORDER BY id").format(
            columns=_select(RECORD_TABLE), where=where
        )
        return self._copy(select, params)

    def _copy(self, select: sql.Composable, params: dict[str, Any]) -> Iterator[bytes]:
        statement = sql.SQL(COPY_OUT).format(select=select)
        with (
            reading(self._pool) as connection,
            connection.cursor() as cursor,
            cursor.copy(statement, params) as copy,
        ):
            for chunk in copy:
                yield bytes(chunk)
