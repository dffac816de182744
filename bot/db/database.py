"""The database handle every process shares: a write session and a read-only session."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.db.engine import make_engine
from bot.db.gate import gate_for_sqlite
from bot.db.statements import Statements

log = logging.getLogger(__name__)


class Database:
    """Owns the engine. Commits happen at the request or job boundary, never in models."""

    def __init__(self, url: str, background_checkpoint: bool = False, first: bool = False) -> None:
        self.url = url
        self.background_checkpoint = background_checkpoint and url.startswith("sqlite")
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()
        self.engine: Engine = make_engine(url, background_checkpoint=self.background_checkpoint)
        self._read_engine = self.engine.execution_options(readonly=True)
        self.sql = Statements(self.engine.dialect)
        # SQLite: writers queue on a machine-wide gate (see bot/db/gate.py), not on SQLite's
        # sleep-and-retry busy handler; `first` (the web) goes before the others' writes.
        # PostgreSQL needs no such thing.
        self._gate = gate_for_sqlite(url, first=first)
        self._write_gate: AbstractContextManager[object] = self._gate or nullcontext()
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read = sessionmaker(self._read_engine, expire_on_commit=False)
        # The connections `begin_held` keeps, one per writing thread.
        self._held = threading.local()
        self._held_all: list[Connection] = []
        self._held_lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        """True on the embedded default."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one transaction, committed on success and rolled back on error."""
        with self._write_gate, self._write() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session: on SQLite it does not take the write lock."""
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A Core connection in one write transaction (the hot path's prebuilt statements)."""
        with self._write_gate, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def begin_held(self) -> Iterator[Connection]:
        """`begin` on a connection this thread keeps between transactions, on SQLite: for
        the threads that write batch after batch (the web's inbox writer, the worker's turn
        committer and sent recorder), taking a connection from the pool and giving it back
        each time was a fifth of the inbox writer's CPU (py-spy: its pool events and
        bookkeeping); `bot web` alone at 300 webhooks/s spent about 6 % less per webhook.
        A transaction that fails drops the connection; the next takes a new one. PostgreSQL
        gets `begin`: its pool checks a connection is alive before handing it out."""
        if not self.is_sqlite:
            with self.begin() as pooled:
                yield pooled
            return
        with self._write_gate, self._held_transaction("conn", self.engine) as conn:
            yield conn

    @contextmanager
    def _held_transaction(self, slot: str, engine: Engine) -> Iterator[Connection]:
        """A transaction on the connection this thread keeps in `slot` (made from `engine`)."""
        conn: Connection | None = getattr(self._held, slot, None)
        if conn is None:
            conn = engine.connect()
            setattr(self._held, slot, conn)
            with self._held_lock:
                self._held_all.append(conn)
        try:
            with conn.begin():
                yield conn
        except BaseException:
            setattr(self._held, slot, None)
            with self._held_lock:
                self._held_all.remove(conn)
            conn.close()
            raise

    def webhook_waiting(self) -> bool:
        """True when a webhook waits for the write gate this process's writers yield to
        (SQLite, not the web itself): a long write should end its transaction early."""
        gate = self._gate
        return gate is not None and not gate.first and gate.webhook_waiting()

    @contextmanager
    def begin_read(self, held: bool = False) -> Iterator[Connection]:
        """A Core connection in one read-only transaction. `held`: on SQLite, on a connection
        this thread keeps between transactions, as `begin_held` does for writers (threads
        that read message after message: the worker's handler threads)."""
        if held and self.is_sqlite:
            with self._held_transaction("read_conn", self._read_engine) as conn:
                yield conn
            return
        with self._read_engine.connect() as conn, conn.begin():
            yield conn

    def start_checkpoints(self, every: float = 1.0) -> None:
        """With background checkpoints, a thread runs `checkpoint` every `every` seconds
        until `stop_checkpoints` (the long-running processes: web, worker)."""
        if not self.background_checkpoint or self._checkpointer is not None:
            return

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    self.checkpoint()
                except Exception:
                    log.exception("WAL checkpoint failed; trying again")

        self._checkpointer = threading.Thread(target=loop, name="checkpointer", daemon=True)
        self._checkpointer.start()

    def stop_checkpoints(self) -> None:
        """Ends the checkpoint thread, if any."""
        self._stop.set()

    def checkpoint(self) -> None:
        """Copies committed WAL pages into the database file without blocking writers
        (SQLite with background checkpoints only; a no-op otherwise)."""
        if not self.background_checkpoint:
            return
        # On the raw connection: SQLAlchemy would wrap the PRAGMA in BEGIN IMMEDIATE.
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # type: ignore[union-attr]
        finally:
            raw.close()

    def dispose(self) -> None:
        """Closes pooled and held connections (no transaction may be under way)."""
        with self._held_lock:
            held, self._held_all = self._held_all, []
        for conn in held:
            conn.close()
        self.engine.dispose()
        if self._gate is not None:
            self._gate.close()
            self._gate = None
            self._write_gate = nullcontext()


# PostgreSQL's "deadlock detected" and "could not serialize access": the transaction was
# rolled back whole, and the same statements may simply run again.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def retryable(exc: BaseException) -> bool:
    """True when `exc` is a transaction the database rolled back to break a deadlock (or a
    serialization conflict): nothing of it was written, and writing it again is safe."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _RETRYABLE_SQLSTATES
