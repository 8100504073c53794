"""Fixed-width hashes of transaction ids, so that millions of ids fit in bounded memory.

A transaction id is any string (often 20-60 characters); a Python ``set`` of 10 million of them costs
over a gigabyte. Here each id becomes an 8-byte hash held in a sorted numpy array: 8 bytes per id (plus
4 for a row number where one is kept), looked up in bulk with ``searchsorted``.

The hash is computed in bulk by numpy over the ids' UTF-8 bytes as Arrow lays them out (no Python
object per id): each 8-byte word of an id is mixed into the state with MurmurHash3's 64-bit finalizer
(a bijection), and the length into the last round. It is the same on every machine and in every
process, not a cryptographic hash (ids are not secrets and not chosen by an attacker). Two different
ids share a hash with probability about ``n * m / 2**64`` (10 million known ids against a million new
ones: about 1 in 2 million runs), the price of bounded memory; the callers say what a collision would
mean for them. numpy and pyarrow are imported here: import this module at execute time only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

_SEED = np.uint64(0x6E74726F70790001)  # "ntropy", version 1 of this hash
_C1 = np.uint64(0xFF51AFD7ED558CCD)
_C2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer, in place: a bijection with full avalanche."""
    h ^= h >> _S33
    h *= _C1
    h ^= h >> _S33
    h *= _C2
    h ^= h >> _S33
    return h


def _as_binary(transaction_ids: Any) -> pa.Array:
    """The ids as an Arrow ``large_binary`` array (strings as UTF-8; lone surrogates kept as bytes)."""
    if isinstance(transaction_ids, pa.ChunkedArray):
        transaction_ids = transaction_ids.combine_chunks()
    if isinstance(transaction_ids, pa.Array):
        return transaction_ids.cast(pa.large_binary())
    ids = transaction_ids if isinstance(transaction_ids, list) else list(transaction_ids)
    try:
        return pa.array(ids, pa.large_string()).cast(pa.large_binary())
    except (UnicodeEncodeError, pa.ArrowException):
        return pa.array([text.encode("utf-8", "surrogateescape") for text in ids], pa.large_binary())


#: Ids longer than this (bytes) are hashed apart, so that one long id does not widen a whole block.
_WIDE = 256


def _hash_matrix(words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Hash rows of zero-padded 8-byte words; only a row's own words (``ceil(length / 8)``) count."""
    hashes = np.full(len(lengths), _SEED, dtype=np.uint64)
    for index in range(words.shape[1]):
        owns = lengths > 8 * index
        if owns.all():
            hashes = _fmix64(hashes ^ words[:, index])
        else:
            hashes[owns] = _fmix64(hashes[owns] ^ words[owns, index])
    return _fmix64(hashes ^ lengths.astype(np.uint64))


def _hash_rows(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Hash the ids at ``data[starts[i] : starts[i] + lengths[i]]``."""
    count = len(lengths)
    width = max(8, -(-int(lengths.max()) // 8) * 8) if count else 8
    matrix = np.zeros((count, width), dtype=np.uint8)
    total = int(lengths.sum())
    if total:
        # Every id's bytes land at the start of its row: one scatter for the whole block.
        rows = np.repeat(np.arange(count, dtype=np.int64) * width - starts, lengths)
        source = np.repeat(starts, lengths) + (
            np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        )
        matrix.ravel()[rows + source] = data[source]
    return _hash_matrix(matrix.view("<u8").astype(np.uint64, copy=False), lengths)


def hash_ids(transaction_ids: Any) -> np.ndarray:
    """The hashes of many ids, in order, as a ``uint64`` array (one id hashes the same in any block).

    :param transaction_ids: the ids: an iterable of strings, or an Arrow string/binary array (nulls
        hash as the empty id).
    """
    array = _as_binary(transaction_ids)
    count = len(array)
    if not count:
        return np.empty(0, np.uint64)
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype="<i8", count=count + 1, offset=array.offset * 8)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
    starts = offsets[:-1].astype(np.int64)
    lengths = (offsets[1:] - offsets[:-1]).astype(np.int64)
    wide = lengths > _WIDE
    if not wide.any():
        return _hash_rows(data, starts, lengths)
    hashes = np.empty(count, dtype=np.uint64)
    hashes[~wide] = _hash_rows(data, starts[~wide], lengths[~wide])
    hashes[wide] = _hash_rows(data, starts[wide], lengths[wide])
    return hashes


def hash_id(transaction_id: str) -> int:
    """The hash of one id, as an unsigned integer (the same as :func:`hash_ids` gives it).

    :param transaction_id: the id.
    """
    return int(hash_ids([transaction_id])[0])


class IdHashSet:
    """An immutable set of id hashes: one sorted ``uint64`` array, 8 bytes per distinct id.

    :param hashes: the hashes (any order, repeats allowed).
    :param owned: the array is handed over (sorted in place, no copy).
    """

    __slots__ = ("_sorted",)

    def __init__(self, hashes: np.ndarray | None = None, *, owned: bool = False) -> None:
        if hashes is None or not len(hashes):
            self._sorted = np.empty(0, np.uint64)
            return
        # Sorted in place, then repeats dropped: numpy 2's np.unique hashes instead, ~10x slower here.
        # ``owned``: the caller hands the array over, so it is sorted where it is, without a copy.
        ordered = hashes if owned and hashes.dtype == np.uint64 else np.array(hashes, dtype=np.uint64)
        ordered.sort()
        keep = np.empty(ordered.size, dtype=bool)
        keep[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
        self._sorted = ordered if keep.all() else ordered[keep]

    @classmethod
    def from_parts(cls, parts: Iterable[np.ndarray]) -> IdHashSet:
        """One set from many arrays of hashes (e.g. one per file or row group).

        :param parts: arrays of ``uint64`` hashes.
        """
        arrays = [part for part in parts if len(part)]
        return cls(np.concatenate(arrays) if arrays else None, owned=True)

    def __len__(self) -> int:
        return int(self._sorted.size)

    @property
    def nbytes(self) -> int:
        """Memory the hashes take."""
        return int(self._sorted.nbytes)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Which of ``hashes`` are in the set, as a boolean array of the same length.

        :param hashes: ``uint64`` hashes to look up.
        """
        if not self._sorted.size or not len(hashes):
            return np.zeros(len(hashes), dtype=bool)
        # Sorted needles walk the big array in order: far fewer cache misses than random ones.
        order = np.argsort(hashes, kind="stable")
        needles = hashes[order]
        positions = np.searchsorted(self._sorted, needles)
        positions[positions == self._sorted.size] = 0
        found = np.empty(len(hashes), dtype=bool)
        found[order] = self._sorted[positions] == needles
        return found


class HashBuffer:
    """A growable ``uint64`` array to gather hashes into (one array, not a list of parts to join)."""

    __slots__ = ("_array", "size")

    def __init__(self) -> None:
        self._array = np.empty(0, np.uint64)
        self.size = 0

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more hashes (growing by half at least, so appends stay linear).

        :param extra: hashes about to be appended.
        """
        needed = self.size + extra
        if needed > self._array.size:
            grown = np.empty(max(needed, self._array.size * 3 // 2), np.uint64)
            grown[: self.size] = self._array[: self.size]
            self._array = grown

    def append(self, hashes: np.ndarray) -> None:
        """Append hashes.

        :param hashes: ``uint64`` hashes.
        """
        self.reserve(len(hashes))
        self._array[self.size : self.size + len(hashes)] = hashes
        self.size += len(hashes)

    def to_set(self) -> IdHashSet:
        """The set of the hashes gathered; the buffer is handed over (do not append after)."""
        return IdHashSet(self._array[: self.size], owned=True)


class FirstRowIndex:
    """The first row of each id hash seen so far, growing while an input is scanned.

    Hashes are kept in sorted runs (a run per block added, merged with the previous one whenever it is
    at least as large: a log-structured merge), so that adding ``n`` ids costs ``O(n log n)`` and a
    lookup searches a few runs. 12 bytes per distinct id (8 for the hash, 4 for the row number).
    """

    __slots__ = ("_runs",)

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(int(hashes.size) for hashes, _ in self._runs)

    @property
    def nbytes(self) -> int:
        """Memory the index takes."""
        return sum(int(hashes.nbytes + rows.nbytes) for hashes, rows in self._runs)

    def first_rows(self, hashes: np.ndarray) -> np.ndarray:
        """For each hash, the first row recorded for it, ``0`` when none was (rows are 1-based).

        :param hashes: ``uint64`` hashes to look up.
        """
        found = np.zeros(len(hashes), dtype=np.int64)
        if not self._runs or not len(hashes):
            return found
        # Sorted needles walk each run in order: far fewer cache misses than random ones.
        order = np.argsort(hashes, kind="stable")
        needles = np.asarray(hashes, np.uint64)[order]
        in_order = np.zeros(len(hashes), dtype=np.int64)
        for run_hashes, run_rows in self._runs:
            positions = np.searchsorted(run_hashes, needles)
            positions[positions == run_hashes.size] = 0
            hit = (run_hashes[positions] == needles) & (in_order == 0)
            in_order[hit] = run_rows[positions[hit]]
        found[order] = in_order
        return found

    def add(self, hashes: np.ndarray, rows: np.ndarray) -> None:
        """Record ``rows[i]`` as the first row of ``hashes[i]`` (the caller adds only unseen hashes,
        each once).

        :param hashes: ``uint64`` hashes, none already in the index.
        :param rows: their row numbers (1-based, below 2**32).
        """
        if not len(hashes):
            return
        order = np.argsort(hashes, kind="stable")
        run = (np.asarray(hashes, np.uint64)[order], np.asarray(rows, np.uint32)[order])
        self._runs.append(run)
        while len(self._runs) > 1 and self._runs[-2][0].size <= self._runs[-1][0].size:
            (h1, r1), (h2, r2) = self._runs[-2], self._runs[-1]
            merged = np.concatenate([h1, h2])
            order = np.argsort(merged, kind="stable")
            self._runs[-2:] = [(merged[order], np.concatenate([r1, r2])[order])]
