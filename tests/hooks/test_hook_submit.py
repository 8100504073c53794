"""submit_batches against the emulator: chunking, order, concurrency, callbacks, skipped chunks, failures."""

from __future__ import annotations

import threading

import pytest

from ntropy_provider.api.wire import MAX_BATCH_SIZE, BatchStatus
from ntropy_provider.exceptions import NtropyValidationError
from ntropy_provider.hooks.ntropy import NtropyHook


def test_60000_records_make_3_batches_with_right_totals_and_order(
    hook: NtropyHook, ntropy_emulator, make_rows
) -> None:
    batches = hook.submit_batches(make_rows(60_000))
    assert [b.total for b in batches] == [MAX_BATCH_SIZE, MAX_BATCH_SIZE, 60_000 - 2 * MAX_BATCH_SIZE]
    stats = ntropy_emulator.stats()
    assert (stats["batches_created"], stats["transactions_submitted"]) == (3, 60_000)
    finals = hook.wait_for_batches([b.id for b in batches], poll_interval=0.1, timeout=60)
    assert all(b.status is BatchStatus.COMPLETED for b in finals)
    ids = [r["id"] for b in batches for r in hook.get_batch_results(b.id).results]
    assert ids == [f"t{i}" for i in range(60_000)]  # every row once, in input order


def test_callbacks_run_in_the_callers_thread_in_order_within_the_concurrency_limit(
    hook: NtropyHook, ntropy_emulator, make_rows
) -> None:
    ntropy_emulator.configure(create_batch_delay_ms=40)
    caller = threading.get_ident()
    events: list[tuple[str, int, int]] = []
    in_flight = 0
    most_in_flight = 0

    def before(index: int, size: int) -> None:
        nonlocal in_flight, most_in_flight
        assert threading.get_ident() == caller
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        events.append(("before", index, size))

    def after(index: int, batch) -> None:
        nonlocal in_flight
        assert threading.get_ident() == caller
        in_flight -= 1
        events.append(("after", index, batch.total))

    batches = hook.submit_batches(
        make_rows(95), chunk_size=10, max_concurrency=3, before_submit=before, on_submitted=after
    )
    assert [b.total for b in batches] == [10] * 9 + [5]
    assert most_in_flight == 3  # concurrent, and never more than asked
    for index in range(10):
        size = 5 if index == 9 else 10
        assert events.count(("before", index, size)) == 1
        assert events.count(("after", index, size)) == 1
        assert events.index(("before", index, size)) < events.index(("after", index, size))
    assert [e[1] for e in events if e[0] == "before"] == list(range(10))  # issued in input order


def test_skipped_chunks_are_not_sent_and_leave_a_gap(hook: NtropyHook, ntropy_emulator, make_rows) -> None:
    submitted: list[int] = []
    batches = hook.submit_batches(
        make_rows(45),
        chunk_size=10,
        skip_chunks={0, 2},
        before_submit=lambda index, size: submitted.append(index),
    )
    assert batches[0] is None and batches[2] is None
    assert [b.total for b in batches if b is not None] == [10, 10, 5]
    assert submitted == [1, 3, 4]
    assert ntropy_emulator.stats()["transactions_submitted"] == 25
    hook.wait_for_batches([b.id for b in batches if b], poll_interval=0.05, timeout=30)
    assert [r["id"] for r in hook.get_batch_results(batches[3].id).results] == [
        f"t{i}" for i in range(30, 40)
    ]


def test_a_refused_chunk_stops_the_submission_and_names_the_input_row(
    hook: NtropyHook, ntropy_emulator, make_rows
) -> None:
    rows = list(make_rows(60))
    rows[37]["amount"] = -5
    accepted: list[int] = []
    with pytest.raises(NtropyValidationError) as info:
        hook.submit_batches(
            rows, chunk_size=10, max_concurrency=1, on_submitted=lambda index, batch: accepted.append(index)
        )
    error = info.value
    assert "input row 37, field amount" in str(error) and "chunk 3" in str(error)
    assert [(e.index, e.field) for e in error.errors] == [(37, "amount")]
    assert accepted == [0, 1, 2]  # the chunks accepted before are reported, so the caller can record them
    assert ntropy_emulator.stats()["batches_created"] == 3  # nothing sent after the refused chunk


def test_an_error_in_a_callback_stops_submission_after_settling_chunks_in_flight(
    hook: NtropyHook, ntropy_emulator, make_rows
) -> None:
    accepted: list[int] = []

    def before(index: int, size: int) -> None:
        if index == 2:
            raise RuntimeError("state store unavailable")

    with pytest.raises(RuntimeError, match="state store unavailable"):
        hook.submit_batches(
            make_rows(50),
            chunk_size=10,
            max_concurrency=2,
            before_submit=before,
            on_submitted=lambda index, batch: accepted.append(index),
        )
    assert sorted(accepted) == [0, 1]
    assert ntropy_emulator.stats()["batches_created"] == 2


def test_empty_input_sends_nothing(hook: NtropyHook, ntropy_emulator) -> None:
    assert hook.submit_batches(iter(())) == []
    assert ntropy_emulator.stats()["batches_created"] == 0


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ("day.parquet", "got a str; to submit a file, use SubmitBatchOperator"),
        ({"id": "t1"}, "got a dict"),
        ("dataframe", "a pandas DataFrame iterates over its column names"),
    ],
)
def test_inputs_that_do_not_iterate_as_rows_are_refused_before_sending(
    hook: NtropyHook, ntropy_emulator, make_rows, records: object, message: str
) -> None:
    if records == "dataframe":
        pandas = pytest.importorskip("pandas")
        records = pandas.DataFrame(make_rows(3))
    with pytest.raises(TypeError, match=message):
        hook.submit_batches(records)  # type: ignore[arg-type]
    assert ntropy_emulator.stats()["batches_created"] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_size": 0}, "chunk_size: expected 1 to 24960"),
        ({"chunk_size": MAX_BATCH_SIZE + 1}, "chunk_size: expected 1 to 24960"),
        ({"max_concurrency": 11}, "max_concurrency: expected 1 to 10"),
        ({"priority": "high"}, "priority: expected one of default, low"),
    ],
)
def test_bad_arguments_are_named(hook: NtropyHook, make_rows, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hook.submit_batches(make_rows(1), **kwargs)


def test_an_unreadable_row_stops_submission_but_chunks_in_flight_are_still_reported(
    hook: NtropyHook, ntropy_emulator, make_rows
) -> None:
    ntropy_emulator.configure(create_batch_delay_ms=50)  # chunks 0-2 are still in flight when 3 fails

    def rows_then_garbage():
        yield from make_rows(35)
        yield {"id": "t35", "amount": object()}
        yield from make_rows(10, start=36)

    accepted: list[int] = []
    with pytest.raises(TypeError, match="input row 35: cannot serialize to JSON"):
        hook.submit_batches(
            rows_then_garbage(),
            chunk_size=10,
            max_concurrency=3,
            on_submitted=lambda index, batch: accepted.append(index),
        )
    assert sorted(accepted) == [0, 1, 2]  # every batch that exists is reported to the caller
    assert ntropy_emulator.stats()["batches_created"] == 3
