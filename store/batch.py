"""One transaction working through many items (inbox rows), each item a *unit* of its own.

Why: through SQLAlchemy's async engine a statement costs ~100 µs of Python on SQLite, tens of
times what SQLite spends on it, and a round trip on PostgreSQL; a row that appends to the
timeline and touches a customer should not pay a statement for each. So units defer their
writes: inserts wait in the unit's segment (:meth:`Batch.defer`), changed rows are marked
(:meth:`Batch.mark`), and the batch writes them with one ``executemany`` per statement when it
is flushed, or earlier when a unit needs to read them.

What stays true for each unit:

- its writes commit with the batch or not at all, and a unit that fails leaves nothing: its
  segment is dropped, the in-memory changes it made are undone (:meth:`Batch.on_undo`), and if
  it ran statements they are rolled back with its SAVEPOINT;
- a unit that needs the database (a query, an ORM flush, any statement) calls
  :meth:`Batch.savepoint` first: what earlier units deferred is written, then the unit's
  SAVEPOINT opens and its own deferred writes follow, so its reads see all of it. A unit that
  never runs a statement never pays for a savepoint;
- a statement a unit runs without its savepoint is refused (a guard on the connection), so a
  component that forgets cannot write outside the unit's rollback;
- a statement a unit runs that writes a table bumps that table's :meth:`Batch.generation`:
  caches read at the start of the batch stop trusting what they hold for it.
"""

from __future__ import annotations

import logging
import weakref
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import Connection, Delete, Engine, Insert, TextClause, Update, event
from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction
from sqlalchemy.sql.elements import SavepointClause

log = logging.getLogger(__name__)

_KEY = "store.batch"
_WRITES = ("INSERT", "UPDATE", "DELETE", "WITH")


class Deferred(Protocol):
    """A write run once per flush with every item deferred to it (``executemany``).

    A deferred write may also say ``at_end = True``: it waits for the batch's end even when a
    unit's savepoint writes the others (rows every batch touches, the same few for all of
    them: written once and in key order at the end, concurrent batches lock them in one order;
    written at each savepoint, in the order units come, they would deadlock).
    """

    #: Smaller first within a flush (a row is written before rows that refer to it).
    order: int

    def write(self, connection: Connection, items: list[Any]) -> None: ...


class UnitStatementError(RuntimeError):
    """A unit ran a statement before :meth:`Batch.savepoint`."""


class _Unit:
    __slots__ = ("nested", "opening", "segment", "undo")

    def __init__(self) -> None:
        self.segment: dict[Deferred, list[Any]] = {}
        self.undo: list[Callable[[], None]] = []
        self.nested: AsyncSessionTransaction | None = None
        self.opening = False


class Batch:
    """The deferred writes, undo journal and savepoints of one batch transaction.

    Open it on the session's transaction (``async with Batch(session) as batch``), run each
    item in ``async with batch.unit()``, and :meth:`flush` before committing. Components find
    it with :meth:`Batch.of` (None outside a batch: they work statement by statement).
    ``state`` holds the caches other layers keep for the batch.
    """

    def __init__(self, session: AsyncSession, *, isolated: bool = False) -> None:
        """``isolated``: every unit opens its savepoint at once and writes what it deferred
        before releasing it, so a failing write fails its own unit (the slow, exact mode a
        batch whose deferred writes failed is replayed in)."""
        self.session = session
        self.isolated = isolated
        self.state: dict[str, Any] = {}
        self._pending: dict[Deferred, list[Any]] = {}
        self._dirty: dict[Deferred, dict[Any, Any]] = {}
        self._unit: _Unit | None = None
        self._writing = False
        self._generations: defaultdict[str, int] = defaultdict(int)
        self._text_writes = 0
        self._connection: Connection | None = None

    @staticmethod
    def of(session: AsyncSession) -> Batch | None:
        found = session.info.get(_KEY)
        return found if isinstance(found, Batch) else None

    async def __aenter__(self) -> Batch:
        connection = (await self.session.connection()).sync_connection
        assert connection is not None
        engine = connection.engine
        if engine not in _GUARDED:
            event.listen(engine, "before_execute", _guard)
            _GUARDED.add(engine)
        connection.info[_KEY] = self
        self._connection = connection
        self.session.info[_KEY] = self
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.session.info.pop(_KEY, None)
        if self._connection is not None:
            self._connection.info.pop(_KEY, None)
            self._connection = None

    # -- deferring ------------------------------------------------------------------------------

    def defer(self, write: Deferred, item: Any) -> None:
        """Write ``item`` with ``write`` at the next flush (dropped if the unit fails)."""
        segment = self._unit.segment if self._unit is not None else self._pending
        segment.setdefault(write, []).append(item)

    def mark(self, write: Deferred, key: Any, record: Any) -> None:
        """``record`` changed: ``write`` gets it (once, as it is then) at the next flush."""
        self._dirty.setdefault(write, {})[key] = record

    def on_undo(self, undo: Callable[[], None]) -> None:
        """Call ``undo`` if the current unit fails (nothing outside a unit)."""
        if self._unit is not None:
            self._unit.undo.append(undo)

    def generation(self, table: str) -> int:
        """Grows when a unit's own statement writes ``table`` (or runs SQL text that writes)."""
        return self._generations[table] + self._text_writes

    # -- units ----------------------------------------------------------------------------------

    def unit(self) -> _UnitScope:
        """``async with batch.unit():`` one item; if it raises, everything it did is undone
        and the error propagates."""
        return _UnitScope(self)

    async def savepoint(self) -> None:
        """Before the current unit's first statement: write what is deferred, open its
        SAVEPOINT. Idempotent; nothing outside a unit."""
        unit = self._unit
        if unit is None or unit.nested is not None:
            return
        self._pending = await self._write(self._pending, dirty=True, keep_last=True)
        unit.opening = True
        try:
            unit.nested = await self.session.begin_nested()
        finally:
            unit.opening = False
        unit.segment = await self._write(unit.segment, dirty=False, keep_last=True)

    async def run_own(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(connection, *args)`` on the batch's connection: statements whose
        effects the caller's caches already hold, so they bump no generation. Inside a unit
        they run in its savepoint."""
        await self.savepoint()
        connection = await self.session.connection()
        self._writing = True
        try:
            return await connection.run_sync(function, *args)
        finally:
            self._writing = False

    async def flush(self) -> None:
        """Write everything deferred (before commit, and before the batch's own reads)."""
        await self._write(self._pending, dirty=True)
        self._pending = {}

    async def _close(self, unit: _Unit) -> None:
        if unit.nested is not None:
            if self.isolated:
                await self._write(unit.segment, dirty=True)
                unit.segment = {}
            await unit.nested.commit()  # flushes the unit's ORM changes inside its savepoint
        elif self.session.new or self.session.dirty or self.session.deleted:
            raise UnitStatementError(
                "a unit changed ORM objects without Batch.savepoint(): call it before "
                "session.add() or changing a loaded object"
            )
        for write, items in unit.segment.items():
            self._pending.setdefault(write, []).extend(items)

    async def _abort_quietly(self, unit: _Unit) -> None:
        """:meth:`_abort`; should rolling back fail too (the connection is lost), the unit's
        own error is the one that goes on (the batch's transaction is done for anyway)."""
        try:
            await self._abort(unit)
        except Exception:
            log.debug("rolling back a failed unit failed as well", exc_info=True)

    async def _abort(self, unit: _Unit) -> None:
        try:
            if unit.nested is not None:
                # Also after a failed flush inside it, which leaves it inactive, not closed.
                await unit.nested.rollback()
            else:
                for obj in list(self.session.new):
                    self.session.expunge(obj)
                for obj in list(self.session.dirty):
                    self.session.expire(obj)
        finally:
            for undo in reversed(unit.undo):
                undo()

    async def _write(
        self, segment: dict[Deferred, list[Any]], *, dirty: bool, keep_last: bool = False
    ) -> dict[Deferred, list[Any]]:
        """Write ``segment`` (and the dirty records); returns what it kept for the end."""
        kept: dict[Deferred, list[Any]] = {}
        jobs = []
        for write, items in segment.items():
            if keep_last and getattr(write, "at_end", False):
                kept[write] = items
            elif items:
                jobs.append((write, items))
        if dirty:
            for write, records in self._dirty.items():
                jobs.append((write, [records[key] for key in sorted(records)]))
            self._dirty = {}
        if not jobs:
            return kept
        jobs.sort(key=lambda job: job[0].order)
        connection = await self.session.connection()
        self._writing = True
        try:
            await connection.run_sync(_run, jobs)
        finally:
            self._writing = False
        return kept

    # -- the guard ------------------------------------------------------------------------------

    def guard(self, clause: Any) -> None:
        """Every statement on the batch's connection: refused in a unit without its
        savepoint, counted in its table's generation when it writes."""
        unit = self._unit
        if unit is None or self._writing:
            return
        if unit.nested is None and not (unit.opening and isinstance(clause, SavepointClause)):
            raise UnitStatementError(
                f"a statement ran in a unit before Batch.savepoint(): {str(clause)[:120]!r}"
            )
        if isinstance(clause, Insert | Update | Delete):
            name = getattr(clause.table, "name", None)
            if name is not None:
                self._generations[name] += 1
        elif isinstance(clause, TextClause | str) and str(clause).lstrip()[:6].upper().startswith(
            _WRITES
        ):
            self._text_writes += 1


class _UnitScope:
    __slots__ = ("_batch", "_unit")

    def __init__(self, batch: Batch) -> None:
        self._batch = batch
        self._unit: _Unit | None = None

    async def __aenter__(self) -> None:
        batch = self._batch
        if batch._unit is not None:
            raise RuntimeError("Batch.unit() inside another unit")
        self._unit = batch._unit = _Unit()
        if batch.isolated:
            try:
                await batch.savepoint()
            except BaseException:
                batch._unit = None
                raise

    async def __aexit__(self, kind: type[BaseException] | None, *_exc: object) -> None:
        batch, unit = self._batch, self._unit
        assert unit is not None
        try:
            if kind is None:
                try:
                    await batch._close(unit)
                except BaseException:
                    await batch._abort_quietly(unit)
                    raise
            else:
                await batch._abort_quietly(unit)
        finally:
            batch._unit = None


#: Engines whose connections call the guard of the batch they belong to.
_GUARDED: weakref.WeakSet[Engine] = weakref.WeakSet()


def _guard(conn: Connection, clause: Any, *_args: Any) -> None:
    batch = conn.info.get(_KEY)
    if batch is not None:
        batch.guard(clause)


def _run(connection: Connection, jobs: list[tuple[Deferred, list[Any]]]) -> None:
    for write, items in jobs:
        write.write(connection, items)
