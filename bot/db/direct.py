"""The hot path's prebuilt statements run on SQLite's own cursor, with SQLAlchemy's types.

`Connection.execute` of a prebuilt Core statement still goes through SQLAlchemy's execution
machinery every time: the compiled-cache lookup, an execution context, the parameters
processed one by one, a result object. On this kind of machine that is 20-30 µs a statement
in a tight loop, against 4 µs for the driver's `cursor.execute` of the same SQL, and more
in the service, where the code is never warm: py-spy (`--gil`) put `Connection.execute` at
23 % of the worker's Python time and 18 % of the web's at 100 FAQ msg/s (issue 15).

`Direct` compiles each statement once (per set of columns, for an INSERT given its rows) and
runs it on the DBAPI connection under the SQLAlchemy connection, inside the transaction
SQLAlchemy began: the same SQL, and the same bind and result processors the column types
give SQLAlchemy (dates stored as SQLite stores them, JSON, booleans). A driver error is
raised as SQLAlchemy raises it (`sqlalchemy.exc.IntegrityError` …, parameters hidden).
Statements it cannot run that way (expanding IN lists, defaults computed at execution) and
every database but SQLite go through `Connection.execute` unchanged: PostgreSQL's round
trip dwarfs the machinery.
"""

from __future__ import annotations

import keyword
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Params = Mapping[str, Any]
Processor = Callable[[Any], Any]


class Rows(Protocol):
    """What callers use of a statement's result, direct or through SQLAlchemy."""

    @property
    def rowcount(self) -> int: ...

    def first(self) -> Any: ...

    def all(self) -> Sequence[Any]: ...

    def scalars(self) -> Iterable[Any]: ...

    def scalar_one(self) -> Any: ...

    def scalar_one_or_none(self) -> Any: ...


class DirectRows:
    """The rows a direct statement returned (named tuples), or how many it changed."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def all(self) -> list[Any]:
        return list(self._rows)

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]

    def scalar_one(self) -> Any:
        if not self._rows:
            raise exc.NoResultFound("No row was found when one was required")
        if len(self._rows) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when one was required")
        return self._rows[0][0]

    def scalar_one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when one or none was required")
        return self._rows[0][0] if self._rows else None


class _Plan:
    """One statement compiled for SQLite: its SQL and how to fill and read it."""

    __slots__ = ("binds", "readers", "row", "sql")

    def __init__(
        self,
        sql: str,
        binds: Sequence[tuple[str, Any, bool, Processor | None]],
        row: Any,
        readers: list[Processor | None],
    ) -> None:
        self.sql = sql
        # Per placeholder: the parameter's key, its value when the caller gives none, whether
        # the caller must give it, the type's bind processor.
        self.binds = binds
        self.row = row  # the named tuple of a returned row; None when nothing is returned
        self.readers = readers  # per returned column: the type's result processor

    def values(self, params: Params) -> tuple[Any, ...]:
        out = []
        for key, default, required, process in self.binds:
            if key in params:
                value = params[key]
            elif required:
                raise exc.InvalidRequestError(f"A value is required for bind parameter {key!r}")
            else:
                value = default
            out.append(process(value) if process is not None else value)
        return tuple(out)

    def read(self, raw: list[tuple[Any, ...]]) -> list[Any]:
        row, readers = self.row, self.readers
        assert row is not None
        if not any(readers):
            return [row._make(values) for values in raw]
        return [
            row._make([r(v) if r is not None else v for r, v in zip(readers, values, strict=True)])
            for values in raw
        ]


def _plan(statement: ClauseElement, dialect: Dialect, keys: tuple[str, ...] | None) -> _Plan | None:
    """The statement compiled for direct runs, or None when it needs SQLAlchemy's machinery."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
    assert isinstance(compiled, SQLCompiler)
    if (
        not dialect.positional
        or compiled.positiontup is None
        or compiled.escaped_bind_names
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.update_prefetch
    ):
        return None
    # Defaults the INSERT must fill in itself (columns the rows leave out): plain values only.
    prefetched = {}
    for column in compiled.insert_prefetch:
        default = column.default
        if default is None or not getattr(default, "is_scalar", False):
            return None
        prefetched[column.key] = default.arg  # type: ignore[attr-defined]
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    binds: list[tuple[str, Any, bool, Processor | None]] = []
    for name in compiled.positiontup:
        bind = by_name[name]
        if bind.callable is not None:
            return None
        if bind.key in prefetched:
            default, required = prefetched[bind.key], False
        else:
            default, required = bind.value, bind.required
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        binds.append((bind.key, default, required, process))
    columns = list(getattr(statement, "exported_columns", ()))
    if not columns:
        return _Plan(compiled.string, binds, None, [])
    names = [column.key for column in columns]
    if len(set(names)) != len(names) or not all(
        name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")
        for name in names
    ):
        return None
    readers = [
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
    ]
    return _Plan(compiled.string, binds, namedtuple("Row", names), readers)


class Direct:
    """Runs statements on SQLite's cursor where it can; `Connection.execute` elsewhere."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.enabled = dialect.name == "sqlite"
        self._plans: dict[tuple[ClauseElement, tuple[str, ...] | None], _Plan | None] = {}

    def plan(self, statement: ClauseElement, keys: tuple[str, ...] | None = None) -> _Plan | None:
        """The statement's plan (made once), None where it runs through SQLAlchemy."""
        if not self.enabled:
            return None
        try:
            return self._plans[(statement, keys)]
        except KeyError:
            plan = self._plans[(statement, keys)] = _plan(statement, self.dialect, keys)
            return plan

    def execute(self, conn: Connection, statement: Any, params: Params | Sequence[Params]) -> Rows:
        """`conn.execute(statement, params)`, directly on SQLite's cursor where it can.

        A list of parameter sets runs the statement once per set (`executemany`, or one
        execution each when it returns rows, so rows come back in the sets' order)."""
        many = not isinstance(params, Mapping)
        sets: Sequence[Params] = params if many else [params]  # type: ignore[assignment,list-item]
        if not sets:
            return conn.execute(statement, params)
        # As SQLAlchemy compiles a DML statement: for the columns the parameters name.
        keys = tuple(sorted(sets[0])) if getattr(statement, "is_dml", False) else None
        plan = self.plan(statement, keys)
        if plan is None or (keys is not None and any(s.keys() != sets[0].keys() for s in sets[1:])):
            return conn.execute(statement, params)
        values = [plan.values(s) for s in sets]
        if not conn.in_transaction():
            conn.begin()  # as `conn.execute` would (autobegin): the caller commits or rolls back
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if plan.row is None and many:
                cursor.executemany(plan.sql, values)
                return DirectRows([], cursor.rowcount)
            raw: list[tuple[Any, ...]] = []
            count = 0
            for one in values:
                cursor.execute(plan.sql, one)
                if plan.row is not None:
                    raw.extend(cursor.fetchall())
                count += max(cursor.rowcount, 0)
            return DirectRows(plan.read(raw) if plan.row is not None else [], count)
        except self.dialect.loaded_dbapi.Error as error:
            raise exc.DBAPIError.instance(
                plan.sql,
                values if many else values[0],
                error,
                self.dialect.loaded_dbapi.Error,
                hide_parameters=True,
                dialect=self.dialect,
                ismulti=many,
            ) from error
        finally:
            cursor.close()
