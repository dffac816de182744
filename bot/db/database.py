"""The database handle every process shares: a write session and a read-only session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from bot.db.engine import make_engine


class Database:
    """Owns the engine. Commits happen at the request or job boundary, never in models."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read = sessionmaker(
            self.engine.execution_options(readonly=True), expire_on_commit=False
        )

    @property
    def is_sqlite(self) -> bool:
        """True on the embedded default."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one transaction, committed on success and rolled back on error."""
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session: on SQLite it does not take the write lock."""
        with self._read() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Raises if the database cannot be reached."""
        with self.read() as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Closes pooled connections."""
        self.engine.dispose()
