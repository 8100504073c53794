"""Cutting the input into ``POST /v3/batches`` bodies (each built by :func:`.calls.batch_body`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ntropy_provider.hooks.calls import batch_body, dumps


@dataclass(frozen=True, slots=True)
class Chunk:
    """One slice of the input, ready to be sent.

    :param index: the chunk's position (0 for the first ``chunk_size`` input rows).
    :param start: the input row index of its first item.
    :param size: how many items it holds.
    :param body: the serialized request body, ``None`` for a skipped chunk.
    """

    index: int
    start: int
    size: int
    body: bytes | None


#: Rows serialized per ``orjson.dumps`` call. orjson gives each output a buffer of at least a few KB, so
#: one call per row would cost ~4 KB per row held; one call per group costs that once per group.
_GROUP_SIZE = 256


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


def iter_chunks(
    records: Iterable[Any], chunk_size: int, *, priority: str, skip: frozenset[int] | set[int] = frozenset()
) -> Iterator[Chunk]:
    """Cut ``records`` into request bodies of at most ``chunk_size`` items, consuming the input lazily.

    Rows are serialized a small group at a time as they are read, then dropped, so a chunk being built
    costs about its JSON bytes; the input is never materialized. Skipped chunks consume their rows
    without serializing them.

    :param records: any iterable of transaction mappings.
    :param chunk_size: items per chunk (>= 1).
    :param priority: the batches' priority.
    :param skip: chunk indexes to consume but not serialize.
    :raises TypeError: naming the input row whose value cannot be represented in JSON.
    """
    iterator = iter(records)
    index = start = 0
    while True:
        if index in skip:
            size = sum(1 for _ in islice(iterator, chunk_size))
            if not size:
                return
            yield Chunk(index, start, size, None)
        else:
            parts: list[bytes] = []
            size = 0
            while size < chunk_size:
                group = list(islice(iterator, min(_GROUP_SIZE, chunk_size - size)))
                if not group:
                    break
                parts.append(_dump_group(group, start + size))
                size += len(group)
                del group
            if not size:
                return
            body = batch_body(parts, priority=priority)
            del parts  # hold the chunk once (as its body), not twice, while the caller sends it
            yield Chunk(index, start, size, body)
            del body
        index += 1
        start += size
