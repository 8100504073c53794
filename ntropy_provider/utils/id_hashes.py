"""Fixed-width hashes of transaction ids, so that millions of ids fit in bounded memory.

A transaction id is any string (often 30-60 characters); a Python ``set`` of 10 million of them costs
over a gigabyte. Here each id becomes an 8-byte BLAKE2b digest held in a sorted numpy array: 8 bytes
per id (plus 4 for a row number where one is kept), looked up in bulk with ``searchsorted``.

Two different ids share a hash with probability about ``n * m / 2**64`` (10 million known ids against
a million new ones: about 1 in 2 million runs), the price of bounded memory; the callers say what a
collision would mean for them. numpy is imported here, so import this module at execute time only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

#: Bytes of each id's digest.
ID_HASH_BYTES = 8


def hash_id(transaction_id: str) -> int:
    """The 8-byte BLAKE2b hash of one id, as an unsigned integer.

    :param transaction_id: the id (lone surrogates, from undecodable input bytes, are kept as bytes).
    """
    digest = hashlib.blake2b(
        transaction_id.encode("utf-8", "surrogateescape"), digest_size=ID_HASH_BYTES
    ).digest()
    return int.from_bytes(digest, "little")


def hash_ids(transaction_ids: Iterable[str]) -> np.ndarray:
    """The hashes of many ids, in order, as a ``uint64`` array.

    :param transaction_ids: the ids (strings).
    """
    blake2b = hashlib.blake2b
    digests = b"".join(
        blake2b(text.encode("utf-8", "surrogateescape"), digest_size=ID_HASH_BYTES).digest()
        for text in transaction_ids
    )
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64, copy=False)


class IdHashSet:
    """An immutable set of id hashes: one sorted ``uint64`` array, 8 bytes per distinct id.

    :param hashes: the hashes (any order, repeats allowed).
    """

    __slots__ = ("_sorted",)

    def __init__(self, hashes: np.ndarray | None = None) -> None:
        self._sorted = np.unique(hashes) if hashes is not None and len(hashes) else np.empty(0, np.uint64)

    @classmethod
    def from_parts(cls, parts: Iterable[np.ndarray]) -> IdHashSet:
        """One set from many arrays of hashes (e.g. one per file or row group).

        :param parts: arrays of ``uint64`` hashes.
        """
        arrays = [part for part in parts if len(part)]
        return cls(np.concatenate(arrays) if arrays else None)

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
        positions = np.searchsorted(self._sorted, hashes)
        positions[positions == self._sorted.size] = 0
        return self._sorted[positions] == hashes


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
        for run_hashes, run_rows in self._runs:
            positions = np.searchsorted(run_hashes, hashes)
            positions[positions == run_hashes.size] = 0
            hit = (run_hashes[positions] == hashes) & (found == 0)
            found[hit] = run_rows[positions[hit]]
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
