"""SubmitBatchOperator against the emulator: chunking, and no duplicate batch whatever try crashes where."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ntropy_provider.exceptions import InputChangedError, InvalidInputError
from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.operators.submit_batch import SubmitBatchOperator
from ntropy_provider.submission.ledger import STATE_CHUNK_KEY


class Crash(Exception):
    """Stands for a worker dying at a precise point."""


class CrashingSubmit(SubmitBatchOperator):
    """Crashes at a chosen point of chosen chunks, only on the try it is told to."""

    def __init__(self, *, crash_at: str | None = None, crash_chunks: tuple[int, ...] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self.crash_at = crash_at
        self.crash_chunks = set(crash_chunks)

    def record_intent(self, store: Any, index: int, state: Any) -> None:
        super().record_intent(store, index, state)
        if self.crash_at == "before_post" and index in self.crash_chunks:
            raise Crash(f"died after recording the intent of chunk {index}, before its POST")

    def record_submitted(self, store: Any, index: int, state: Any, batch: Any) -> None:
        if self.crash_at == "after_post" and index in self.crash_chunks:
            raise Crash(f"died after batch {batch.id} was answered for chunk {index}, before recording it")
        super().record_submitted(store, index, state, batch)


def _operator(rows: Any, **kwargs: Any) -> CrashingSubmit:
    kwargs.setdefault("chunk_size", 10)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("max_poll_interval", 0.2)
    return CrashingSubmit(task_id="submit", items=rows, **kwargs)


def _result_ids(batch_ids: list[str]) -> list[str]:
    hook = NtropyHook()
    ids: list[str] = []
    for batch in hook.wait_for_batches(batch_ids, poll_interval=0.05, timeout=30):
        assert batch.status == "completed"
        ids.extend(item["id"] for item in hook.get_batch_results(batch.id).results)
    return ids


def test_chunks_in_input_order_and_xcom_is_small(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows
):
    rows = make_rows(25)
    result = _operator(rows).execute({"task_state_store": state_store})
    assert len(result["batch_ids"]) == 3
    assert result["total"] == 25 and result["rejected"] == 0 and result["rejects_path"] is None
    assert len(json.dumps(result)) < 1000
    assert ntropy_emulator.stats()["batches_created"] == 3
    assert _result_ids(result["batch_ids"]) == [r["id"] for r in rows]


@pytest.mark.parametrize(
    ("crash_at", "crash_chunks", "max_concurrency"),
    [
        pytest.param("before_post", (1,), 1, id="before-post"),
        pytest.param("after_post", (1,), 1, id="after-post-before-record"),
        pytest.param("after_post", (3,), 1, id="after-some-chunks-of-many"),
        pytest.param("after_post", (0, 1, 2), 3, id="same-size-chunks-in-flight"),
    ],
)
def test_retry_after_crash_creates_no_extra_batch(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows, crash_at, crash_chunks, max_concurrency
):
    rows = make_rows(55)  # 6 chunks: five of 10 (same size!) and one of 5
    # Slow answers: with max_concurrency=3 all three POSTs are in flight before the first answer.
    ntropy_emulator.configure(create_batch_delay_ms=200)
    first = _operator(rows, crash_at=crash_at, crash_chunks=crash_chunks, max_concurrency=max_concurrency)
    with pytest.raises(Crash):
        first.execute({"task_state_store": state_store})
    ntropy_emulator.configure(create_batch_delay_ms=0)
    created_by_first = {b.id for b in NtropyHook().list_batches()}
    assert created_by_first
    unresolved = [v for v in state_store.values.values() if v.get("intent_at") and not v.get("batch_id")]
    assert len(unresolved) == len(crash_chunks), "the crash left intents whose batch id was never recorded"

    second = _operator(rows, max_concurrency=max_concurrency)
    result = second.execute({"task_state_store": state_store})

    stats = ntropy_emulator.stats()
    assert stats["batches_created"] == 6, "a retry must not create a batch for a chunk already submitted"
    assert stats["transactions_submitted"] == 55
    assert len(set(result["batch_ids"])) == 6
    assert created_by_first <= set(result["batch_ids"]), "batches of the crashed try must be re-attached"
    assert _result_ids(result["batch_ids"]) == [r["id"] for r in rows]

    # A third try re-attaches to everything and sends nothing.
    third = _operator(rows).execute({"task_state_store": state_store})
    assert third["batch_ids"] == result["batch_ids"]
    assert ntropy_emulator.stats()["batches_created"] == 6


def test_crash_with_foreign_batch_of_same_size_is_not_mistaken(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows
):
    rows = make_rows(20)
    first = _operator(rows, crash_at="before_post", crash_chunks=(1,))
    with pytest.raises(Crash):
        first.execute({"task_state_store": state_store})
    # Another task with the same API key creates a batch of exactly the chunk's size meanwhile.
    NtropyHook().create_batch(make_rows(10, prefix="other-"))
    result = _operator(rows).execute({"task_state_store": state_store})
    assert ntropy_emulator.stats()["batches_created"] == 3
    assert _result_ids(result["batch_ids"]) == [r["id"] for r in rows]


def test_changed_input_between_tries_is_refused(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows
):
    _operator(make_rows(20)).execute({"task_state_store": state_store})
    with pytest.raises(InputChangedError, match="Chunk 0 differs"):
        _operator(make_rows(20, prefix="new-")).execute({"task_state_store": state_store})
    result = _operator(make_rows(20, prefix="new-"), on_input_change="resubmit").execute(
        {"task_state_store": state_store}
    )
    assert ntropy_emulator.stats()["batches_created"] == 4
    assert _result_ids(result["batch_ids"])[0] == "new-0"


def test_state_is_one_small_key_per_chunk(ntropy_connection: str, ntropy_emulator, state_store, make_rows):
    result = _operator(make_rows(25)).execute({"task_state_store": state_store})
    stored = state_store.values[STATE_CHUNK_KEY.format(index=2)]
    assert stored["batch_id"] == result["batch_ids"][2]
    assert stored["size"] == 5 and stored["intent_at"] is None
    assert all(len(json.dumps(v)) < 300 for v in state_store.values.values())


def _bad_rows(make_rows) -> list[Any]:
    rows: list[Any] = make_rows(8)
    rows[1] = {**rows[1], "amount": -3}
    rows[3] = {**rows[3], "date": "2024-02-30"}
    rows[4] = {k: v for k, v in rows[4].items() if k != "currency"}
    rows[5] = {**rows[5], "description": "x" * 1_000_000}
    rows[6] = {**rows[6], "amount": "12.5", "entry_type": "debit"}
    rows.append("not an object")
    return rows


def test_on_invalid_fail_names_rows_and_fields_and_sends_nothing(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows
):
    with pytest.raises(InvalidInputError) as caught:
        _operator(_bad_rows(make_rows)).execute({"task_state_store": state_store})
    message = str(caught.value)
    assert "6 of 9 input row(s)" in message
    for expected in (
        "row 2: amount",
        "row 4: date",
        "row 5: currency: required",
        "row 6: description",
        "row 7: amount: expected a number",
        "row 9: (row)",
    ):
        assert expected in message
    assert "x" * 100 not in message, "a 1 MB value must not be copied into the message"
    assert ntropy_emulator.stats()["batches_created"] == 0


def test_on_invalid_quarantine_keeps_every_rejected_row(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows, tmp_path: Path
):
    rejects = tmp_path / "rejects.jsonl"
    result = _operator(_bad_rows(make_rows), on_invalid="quarantine", rejects_path=str(rejects)).execute(
        {"task_state_store": state_store}
    )
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert result["total"] == 3 and result["rejected"] == 6
    assert result["rejects_path"] == str(rejects)
    assert [line["row"] for line in lines] == [2, 4, 5, 6, 7, 9]
    assert all(line["reason"] for line in lines)
    assert _result_ids(result["batch_ids"]) == ["t0", "t2", "t7"]


def test_non_utf8_csv_quarantined(ntropy_connection: str, ntropy_emulator, state_store, tmp_path: Path):
    source = tmp_path / "in.csv"
    source.write_bytes(
        b"id,description,date,amount,entry_type,currency\n"
        b"a,caf\xe9,2024-01-02,3,outgoing,EUR\n"
        b"b,ok,2024-01-02,3.25,outgoing,EUR\n"
    )
    rejects = tmp_path / "rejects.jsonl"
    result = _operator(str(source), on_invalid="quarantine", rejects_path=str(rejects)).execute(
        {"task_state_store": state_store}
    )
    assert (result["total"], result["rejected"]) == (1, 1)
    assert "UTF-8" in json.loads(rejects.read_text())["reason"]
    with pytest.raises(InvalidInputError, match="row 1: description: not valid UTF-8"):
        _operator(str(source)).execute({"task_state_store": state_store})
