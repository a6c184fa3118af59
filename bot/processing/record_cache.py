"""One table's records of a batch, by key, and whether they can still be trusted.

Each record is kept with the table's :meth:`store.batch.Batch.generation` at the time it was
read: a statement of a row's own that writes the table since makes it stale, and it is read
again. What a row puts here is taken out again if the row fails.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from bot.processing.records import Record
from store.batch import Batch

R = TypeVar("R", bound=Record)


class RecordCache(Generic[R]):
    __slots__ = ("_batch", "_entries", "_table")

    def __init__(self, batch: Batch, record: type[R]) -> None:
        self._batch = batch
        self._table = record.table.name
        self._entries: dict[Hashable, tuple[R, int]] = {}

    def fresh(self, key: Hashable) -> bool:
        """There is a record for ``key``, read since the table was last written."""
        found = self._entries.get(key)
        return found is not None and found[1] == self._batch.generation(self._table)

    def get(self, key: Hashable) -> R:
        """The record for ``key`` (KeyError if none): check :meth:`fresh` first."""
        return self._entries[key][0]

    def put(self, key: Hashable, record: R) -> None:
        entries = self._entries
        previous = entries.get(key)
        entries[key] = (record, self._batch.generation(self._table))

        def undo() -> None:
            if previous is None:
                entries.pop(key, None)
            else:
                entries[key] = previous

        self._batch.on_undo(undo)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self._entries))
