"""Fixed-width id hashes: the same id hashes the same in any block, and sets and indexes find them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ntropy_provider.utils.id_hashes import FirstRowIndex, IdHashSet, hash_id, hash_ids


def test_an_id_hashes_the_same_alone_in_a_list_or_in_arrow_whatever_its_neighbours() -> None:
    ids = ["t1", "", "abcdefgh", "abcdefgh\x00", "é" * 5, "x" * 1000, "a\udcff", "txn-000000000001"]
    alone = [hash_id(i) for i in ids]
    assert hash_ids(ids).tolist() == alone
    assert hash_ids(ids[::-1]).tolist() == alone[::-1]
    arrow = pa.array([i for i in ids if "\udcff" not in i])
    assert hash_ids(arrow).tolist() == [h for i, h in zip(ids, alone, strict=True) if "\udcff" not in i]
    assert len(set(alone)) == len(ids), "trailing zero bytes, lengths and long ids all tell ids apart"
    assert hash_ids(arrow.slice(2, 3)).tolist() == alone[2:5], "an Arrow slice's offset is honoured"


def test_a_million_sequential_ids_have_distinct_hashes() -> None:
    hashes = hash_ids(pa.array([f"txn-{i:012d}" for i in range(1_000_000)]))
    assert hashes.dtype == np.uint64
    assert len(np.unique(hashes)) == 1_000_000


def test_the_set_and_the_first_row_index_find_what_they_hold() -> None:
    known = IdHashSet.from_parts([hash_ids(["a", "b"]), hash_ids(["b", "c"])])
    assert len(known) == 3 and known.nbytes == 24
    assert known.contains(hash_ids(["c", "d", "a"])).tolist() == [True, False, True]
    assert IdHashSet().contains(hash_ids(["a"])).tolist() == [False]

    index = FirstRowIndex()
    for block in range(40):  # enough blocks for the runs to merge several times
        ids = [f"id{block}-{i}" for i in range(10)]
        index.add(hash_ids(ids), np.arange(block * 10 + 1, block * 10 + 11))
    assert len(index) == 400 and index.nbytes == 400 * 12
    assert index.first_rows(hash_ids(["id0-0", "id39-9", "id17-3", "nope"])).tolist() == [1, 400, 174, 0]
    # Needles in any order, repeated, in one call: each gets its own answer.
    needles = ["id39-9", "nope", "id0-0", "id39-9", "id0-0", "id5-5"]
    assert index.first_rows(hash_ids(needles)).tolist() == [400, 0, 1, 400, 1, 56]
    assert FirstRowIndex().first_rows(hash_ids(["a"])).tolist() == [0]
