"""Cutting rows into ``POST /v3/batches`` bodies, lazily, at boundaries the caller gives.

One cutter serves both callers: the operator cuts at its :mod:`~ntropy_provider.submission.plan`'s
boundaries (and checks each chunk against the plan as it is cut); ``NtropyHook.submit_batches`` cuts
an arbitrary iterable at fixed ``chunk_size`` boundaries (:func:`fixed_sizes`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ntropy_provider.hooks.calls import batch_body, dumps


@dataclass(frozen=True, slots=True)
class Chunk:
    """One slice of the input, ready to be sent.

    :param index: the chunk's position (0 for the first chunk).
    :param start: the index, among the rows cut, of its first row.
    :param size: how many rows it holds.
    :param body: the serialized request body, ``None`` for a skipped chunk.
    """

    index: int
    start: int
    size: int
    body: bytes | None


#: Rows serialized per ``orjson.dumps`` call. orjson gives each output a buffer of at least a few KB, so
#: one call per row would cost ~4 KB per row held; one call per group costs that once per group.
_GROUP_SIZE = 256

#: ``check(index, rows)``: called with each group of a chunk's rows as it is cut (e.g. to fingerprint
#: them), and ``check(index, None)`` once the chunk is complete, before it is yielded.
ChunkCheck = Callable[[int, "list[Any] | None"], None]


def fixed_sizes(chunk_size: int) -> Iterator[int]:
    """Boundaries every ``chunk_size`` rows, for an input of unknown length.

    :param chunk_size: rows per chunk (>= 1).
    """
    return itertools.repeat(chunk_size)


def _dump_group(rows: list[Any], first_row: int) -> bytes:
    """The JSON of ``rows`` without the list's brackets (a copy sized exactly)."""
    try:
        return dumps(rows)[1:-1]
    except TypeError:
        for offset, row in enumerate(rows):
            try:
                dumps(row)
            except TypeError as err:
                raise TypeError(f"input row {first_row + offset}: cannot serialize to JSON: {err}") from None
        raise


def cut_chunks(
    records: Iterable[Any],
    sizes: Iterable[int],
    *,
    priority: str,
    skip: frozenset[int] | set[int] = frozenset(),
    check: ChunkCheck | None = None,
    first_index: int = 0,
    first_start: int = 0,
) -> Iterator[Chunk]:
    """Cut ``records`` into request bodies of the given sizes, consuming the input lazily.

    Rows are serialized a small group at a time as they are read, then dropped, so a chunk being built
    costs about its JSON bytes; the input is never materialized. Skipped chunks consume their rows
    without serializing them. The last chunk may be shorter than its size when the input ends.

    :param records: any iterable of transaction mappings.
    :param sizes: the size of each chunk in turn (each >= 1); cutting stops when either runs out.
    :param priority: the batches' priority.
    :param skip: chunk indexes to consume but not serialize.
    :param check: see :data:`ChunkCheck`; its exception stops the cut before the chunk is yielded.
    :param first_index: the index of the first chunk (when the rows start at a later chunk).
    :param first_start: the row index of the first row (likewise).
    :raises TypeError: naming the input row whose value cannot be represented in JSON.
    """
    iterator = iter(records)
    start = first_start
    for index, chunk_size in enumerate(sizes, start=first_index):
        parts: list[bytes] = []
        size = 0
        while size < chunk_size:
            group = list(islice(iterator, min(_GROUP_SIZE, chunk_size - size)))
            if not group:
                break
            if check is not None:
                check(index, group)
            if index not in skip:
                parts.append(_dump_group(group, start + size))
            size += len(group)
            del group
        if not size:
            return
        if check is not None:
            check(index, None)
        if index in skip:
            yield Chunk(index, start, size, None)
        else:
            body = batch_body(parts, priority=priority)
            del parts  # hold the chunk once (as its body), not twice, while the caller sends it
            yield Chunk(index, start, size, body)
            del body
        start += size


def iter_chunks(
    records: Iterable[Any], chunk_size: int, *, priority: str, skip: frozenset[int] | set[int] = frozenset()
) -> Iterator[Chunk]:
    """Cut ``records`` into bodies of at most ``chunk_size`` rows (:func:`cut_chunks` at fixed sizes).

    :param records: any iterable of transaction mappings.
    :param chunk_size: rows per chunk (>= 1).
    :param priority: the batches' priority.
    :param skip: chunk indexes to consume but not serialize.
    """
    return cut_chunks(records, fixed_sizes(chunk_size), priority=priority, skip=skip)
