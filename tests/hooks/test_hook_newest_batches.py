"""Many batches' statuses from the key's newest batches: one list request instead of a GET each."""

from __future__ import annotations

from ntropy_provider.api.models import Batch
from ntropy_provider.hooks.calls import NEWEST_PAGE_SIZE, NewestBatchesSearch
from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.hooks.ntropy_async import NtropyAsyncHook

LIST, GET = "GET /v3/batches", "GET /v3/batches/{batch_id}"


def _batch(batch_id: str) -> Batch:
    return Batch.from_dict(
        {
            "id": batch_id,
            "operation": "POST /v3/transactions",
            "status": "completed",
            "created_at": "2024-01-01T00:00:00+00:00",
            "updated_at": "2024-01-01T00:00:00+00:00",
            "progress": 1,
            "total": 1,
            "request_id": "r",
        }
    )


def _requests(ntropy_emulator) -> tuple[int, int]:
    counts = ntropy_emulator.stats()["requests"]
    return counts.get(LIST, 0), counts.get(GET, 0)


def test_the_search_stops_when_all_are_found_or_a_page_past_what_they_fill() -> None:
    search = NewestBatchesSearch(["b1", "b2"])
    assert not search.see(_batch("other"))
    assert not search.see(_batch("b2"))
    assert search.see(_batch("b1"))
    assert set(search.found) == {"b1", "b2"}

    lost = NewestBatchesSearch(["b1"])
    looked = 0
    while not lost.see(_batch(f"other{looked}")):
        looked += 1
    assert looked + 1 == 2 * NEWEST_PAGE_SIZE and lost.found == {}, "not the key's whole history"


def test_batches_just_created_are_read_from_one_list_request(
    hook: NtropyHook, ntropy_emulator, make_rows
) -> None:
    ids = [hook.create_batch(make_rows(1, start=i)).id for i in range(12)]
    before = _requests(ntropy_emulator)
    found = hook.find_among_newest(ids)
    assert set(found) == set(ids) and all(found[i].id == i for i in ids)
    listed, got = (after - then for after, then in zip(_requests(ntropy_emulator), before, strict=True))
    assert (listed, got) == (1, 0)
    assert hook.find_among_newest(["no-such-batch"]) == {}, "not found: left to the caller's GET"


async def test_the_async_hook_finds_them_the_same_way(
    async_hook: NtropyAsyncHook, hook: NtropyHook, ntropy_emulator, make_rows
) -> None:
    ids = [hook.create_batch(make_rows(1, start=i)).id for i in range(5)]
    before = _requests(ntropy_emulator)
    async with async_hook:
        found = await async_hook.find_among_newest(ids)
        assert await async_hook.find_among_newest([]) == {}
    assert set(found) == set(ids)
    assert _requests(ntropy_emulator)[0] - before[0] == 1
