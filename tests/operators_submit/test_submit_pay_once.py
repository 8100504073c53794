"""Pay once: max_credits, dry_run, skip_enriched, duplicates, and re-runs that carry the day over.

End to end with dag.test() against the emulator, which counts the batches and transactions it was
sent: the money a run would spend is what these tests watch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dag_run_helpers import load_test_dags, task_states, xcom_value

from ntropy_provider.emulator.testing import wait_for
from ntropy_provider.exceptions import CreditLimitExceededError, EnrichedOutputError
from ntropy_provider.io.transactions_source import iter_rows
from ntropy_provider.operators.submit_batch import SubmitBatchOperator
from ntropy_provider.submission.pay_once import PayOnce
from ntropy_provider.submission.skip_enriched import load_enriched_ids


def _write_input(path: Path, rows: list[dict[str, Any]]) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=64)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _run(conf: dict[str, Any]) -> Any:
    module = load_test_dags("pay_once_dags")
    return module.pay_once_dag.test(run_conf=conf)


def _ok_ids(output: Path) -> list[str]:
    return pq.read_table(output / "ok" / "part-0.parquet").column("transaction_id").to_pylist()


def _check_invariant(submitted: dict[str, Any]) -> None:
    assert submitted["total"] + submitted["rejected"] + submitted["skipped"] == submitted["input_rows"], (
        submitted
    )


@pytest.fixture
def pipeline(airflow_db, ntropy_connection: str, ntropy_emulator) -> Any:
    ntropy_emulator.configure(items_per_second=100_000)
    return ntropy_emulator


# --------------------------------------------------------------------------------------------------
# max_credits and the dry run
# --------------------------------------------------------------------------------------------------
def test_a_run_above_max_credits_sends_nothing_and_is_not_retried(pipeline, tmp_path, make_rows) -> None:
    source = _write_input(tmp_path / "day.parquet", make_rows(100))
    out = tmp_path / "out"

    dag_run = _run({"input_path": str(source), "output_path": str(out), "max_credits": 99})

    assert dag_run.state == "failed"
    assert task_states(dag_run)["submit"] == ("failed", 1), "over the limit is final: no retry"
    assert pipeline.stats()["batches_created"] == 0
    assert pipeline.stats()["transactions_submitted"] == 0


def test_max_credits_message_names_count_limit_and_input(ntropy_connection, make_rows) -> None:
    operator = SubmitBatchOperator(task_id="submit", items=make_rows(10), max_credits=5)
    with pytest.raises(CreditLimitExceededError, match=r"10 transaction.*\(5\).*a list of 10 rows"):
        operator.submit({})


def test_the_connection_max_credits_is_a_ceiling_a_task_cannot_lift(
    ntropy_emulator, monkeypatch, make_rows
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_NTROPY_DEFAULT",
        json.dumps(
            {
                "conn_type": "ntropy",
                "host": ntropy_emulator.url,
                "password": ntropy_emulator.api_key,
                "extra": {"max_credits": 7},
            }
        ),
    )
    operator = SubmitBatchOperator(task_id="submit", items=make_rows(10), max_credits=1_000)
    with pytest.raises(CreditLimitExceededError, match="connection's max_credits extra"):
        operator.submit({})
    assert ntropy_emulator.stats()["batches_created"] == 0


def test_a_dry_run_sends_nothing_and_reports_what_the_real_run_then_uses(
    pipeline, tmp_path, make_rows
) -> None:
    rows = make_rows(100)
    rows[5]["amount"] = -1  # one invalid row: rejected, not paid
    source = _write_input(tmp_path / "day.jsonl", rows)
    out = tmp_path / "out"

    dry = _run({"input_path": str(source), "output_path": str(out), "dry_run": True})
    assert dry.state == "success", task_states(dry)
    report = xcom_value(dry, "submit")
    assert pipeline.stats()["batches_created"] == 0
    assert report["dry_run"] is True and report["batch_ids"] == []
    assert (report["batches"], report["credits"], report["rejected"]) == (3, 99, 1)
    assert report["estimated_seconds"] == 0  # 99 credits fit in a full bucket
    _check_invariant(report)

    real = _run({"input_path": str(source), "output_path": str(out)})
    assert real.state == "success", task_states(real)
    submitted = xcom_value(real, "submit")
    assert pipeline.stats()["batches_created"] == report["batches"]
    assert pipeline.stats()["transactions_submitted"] == report["credits"] == submitted["credits"]


# --------------------------------------------------------------------------------------------------
# skip_enriched and carry_over: re-runs and overlapping backfills
# --------------------------------------------------------------------------------------------------
def test_a_rerun_with_unchanged_input_creates_no_batch_and_leaves_ok_byte_identical(
    pipeline, tmp_path, make_rows
) -> None:
    source = _write_input(tmp_path / "day.parquet", make_rows(100))
    out = tmp_path / "out"
    conf = {"input_path": str(source), "output_path": str(out), "skip_enriched": str(out)}

    first = _run(conf)
    assert first.state == "success", task_states(first)
    before = (out / "ok" / "part-0.parquet").read_bytes()
    inode = (out / "ok" / "part-0.parquet").stat().st_ino
    assert pipeline.stats()["batches_created"] == 3

    again = _run(conf)
    assert again.state == "success", task_states(again)
    submitted = xcom_value(again, "submit")
    written = xcom_value(again, "write_results")
    assert pipeline.stats()["batches_created"] == 3, "the re-run created no batch"
    assert (submitted["skipped"], submitted["credits"], submitted["total"]) == (100, 0, 0)
    _check_invariant(submitted)
    assert (written["ok_rows"], written["carried_rows"]) == (100, 100)
    assert (out / "ok" / "part-0.parquet").stat().st_ino != inode, "rewritten (atomically), not left alone"
    assert (out / "ok" / "part-0.parquet").read_bytes() == before


def test_a_backfill_over_a_half_done_day_enriches_only_the_missing_ids(pipeline, tmp_path, make_rows) -> None:
    rows = make_rows(120)
    out = tmp_path / "out"
    half = _write_input(tmp_path / "half.parquet", rows[::2])
    assert _run({"input_path": str(half), "output_path": str(out)}).state == "success"
    sent_before = pipeline.stats()["transactions_submitted"]

    full = _write_input(tmp_path / "full.parquet", rows)
    dag_run = _run({"input_path": str(full), "output_path": str(out), "skip_enriched": str(out)})

    assert dag_run.state == "success", task_states(dag_run)
    submitted = xcom_value(dag_run, "submit")
    assert pipeline.stats()["transactions_submitted"] - sent_before == 60 == submitted["credits"]
    assert submitted["skipped"] == 60
    _check_invariant(submitted)
    ids = _ok_ids(out)
    assert sorted(ids) == sorted(r["id"] for r in rows), "every id once: new ones and carried ones"


def test_a_changed_row_is_the_only_thing_sent(pipeline, tmp_path, make_rows) -> None:
    rows = make_rows(100)
    out = tmp_path / "out"
    source = tmp_path / "day.jsonl"
    _write_input(source, rows)
    assert _run({"input_path": str(source), "output_path": str(out)}).state == "success"
    batches_before = pipeline.stats()["batches_created"]
    sent_before = pipeline.stats()["transactions_submitted"]

    rows[37] = {**rows[37], "id": "t37-corrected"}  # the upstream file was fixed: a new id
    _write_input(source, rows)
    dag_run = _run({"input_path": str(source), "output_path": str(out), "skip_enriched": str(out)})

    assert dag_run.state == "success", task_states(dag_run)
    assert pipeline.stats()["batches_created"] - batches_before == 1
    assert pipeline.stats()["transactions_submitted"] - sent_before == 1
    ids = _ok_ids(out)
    assert ids[0] == "t37-corrected", "the new rows first, then the earlier ones"
    assert len(ids) == 101 and "t37" in ids, "the earlier enriched row is kept"


def test_without_carry_over_a_rerun_would_lose_the_skipped_rows(pipeline, tmp_path, make_rows) -> None:
    # What carry_over is for: the same re-run writing only its own (zero) rows.
    source = _write_input(tmp_path / "day.parquet", make_rows(50))
    out = tmp_path / "out"
    conf = {"input_path": str(source), "output_path": str(out), "skip_enriched": str(out)}
    assert _run(conf).state == "success"
    assert _run({**conf, "carry_over": False}).state == "success"
    assert _ok_ids(out) == []


# --------------------------------------------------------------------------------------------------
# Duplicates inside one input
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_an_id_twice_in_the_input_is_sent_once(pipeline, tmp_path, make_rows, suffix) -> None:
    rows = make_rows(60)
    rows[45] = {**rows[45], "id": rows[2]["id"]}  # row 46 repeats row 3's id (a re-delivery)
    source = _write_input(tmp_path / f"day{suffix}", rows)
    out = tmp_path / "out"

    dag_run = _run({"input_path": str(source), "output_path": str(out)})

    assert dag_run.state == "success", task_states(dag_run)
    submitted = xcom_value(dag_run, "submit")
    assert pipeline.stats()["transactions_submitted"] == 59 == submitted["credits"]
    assert (submitted["duplicates"], submitted["rejected"]) == (1, 1)
    _check_invariant(submitted)
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rejects] == [46]
    assert "duplicate_id" in rejects[0]["reason"] and "row 3" in rejects[0]["reason"]
    assert sorted(_ok_ids(out)) == sorted({r["id"] for r in rows})


def test_on_duplicate_fail_sends_nothing(ntropy_connection, ntropy_emulator, make_rows) -> None:
    from ntropy_provider.exceptions import DuplicateIdError

    rows = make_rows(10)
    rows.append(dict(rows[4]))
    operator = SubmitBatchOperator(task_id="submit", items=rows, on_duplicate="fail")
    with pytest.raises(DuplicateIdError, match=r"row 11 \(id of row 5\)"):
        operator.submit({})
    assert ntropy_emulator.stats()["batches_created"] == 0


def test_a_reread_from_a_later_row_keeps_the_planned_rows(tmp_path, make_rows) -> None:
    # A resumed submission reads again from its next chunk: duplicates and skips must match the scan.
    rows = make_rows(300)
    for repeat, first in ((150, 10), (260, 200), (299, 0)):
        rows[repeat] = {**rows[repeat], "id": rows[first]["id"]}
    source = _write_input(tmp_path / "day.parquet", rows)
    enriched = tmp_path / "earlier" / "ok"
    enriched.mkdir(parents=True)
    earlier_ids = [f"t{i}" for i in range(0, 300, 7)]
    pq.write_table(pa.table({"transaction_id": earlier_ids}), enriched / "part-0.parquet")

    pay_once = PayOnce(skip_enriched=str(enriched.parent), on_duplicate="reject")
    planned = [r.row for r in pay_once.scan_rows(iter_rows(source), None)]
    counts = pay_once.counts()
    assert counts["duplicates"] == 3 and counts["skipped"] > 0
    again = PayOnce(skip_enriched=str(enriched.parent), on_duplicate="reject").reread_rows(
        lambda start: iter_rows(source, start_row=start), start_row=121, duplicates=counts["duplicates"]
    )
    assert [r.row for r in again] == [row for row in planned if row >= 121]


# --------------------------------------------------------------------------------------------------
# Bad skip_enriched locations
# --------------------------------------------------------------------------------------------------
def test_a_missing_skip_enriched_path_skips_nothing_and_says_so(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="ntropy_provider.submission.skip_enriched")
    ids = load_enriched_ids([str(tmp_path / "never-written")])
    assert len(ids) == 0
    assert "nothing enriched at" in caplog.text and "never-written" in caplog.text


def test_a_skip_enriched_file_without_the_id_column_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"id": ["a"]}), path)
    with pytest.raises(EnrichedOutputError, match=r"other\.parquet has no 'transaction_id' column"):
        load_enriched_ids([str(path)])


def test_an_unreadable_skip_enriched_file_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "part-0.parquet").write_text("not parquet")
    with pytest.raises(EnrichedOutputError, match=r"cannot read .*part-0\.parquet as Parquet"):
        load_enriched_ids([str(tmp_path)])


def test_skip_enriched_ids_of_another_type_are_a_clear_error(tmp_path) -> None:
    path = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"transaction_id": pa.array([1, 2], pa.int64())}), path)
    with pytest.raises(EnrichedOutputError, match=r"ints\.parquet holds 'transaction_id' as int64"):
        load_enriched_ids([str(path)])


def test_skip_enriched_reads_lists_and_globs(tmp_path) -> None:
    for day, ids in (("2024-01-01", ["a", "b"]), ("2024-01-02", ["c"])):
        (tmp_path / f"date={day}" / "ok").mkdir(parents=True)
        pq.write_table(pa.table({"transaction_id": ids}), tmp_path / f"date={day}" / "ok" / "part-0.parquet")
    assert len(load_enriched_ids([str(tmp_path / "date=*")])) == 3
    assert len(load_enriched_ids([str(tmp_path / "date=2024-01-01"), str(tmp_path / "nope")])) == 2


# --------------------------------------------------------------------------------------------------
# Resubmitting errored batches re-reads the same filtered rows, and pays again
# --------------------------------------------------------------------------------------------------
class _HealingSubmit(SubmitBatchOperator):
    """Batches error until the first resubmission; then the emulator heals."""

    def __init__(self, *, emulator: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.emulator = emulator

    def _resubmit_errored(self, context: Any, errored: list[str]) -> bool:
        self.emulator.configure(batch_error_rate=0.0)
        return super()._resubmit_errored(context, errored)


def test_resubmitted_chunks_keep_duplicates_and_skips_out_and_count_their_credits(
    ntropy_connection, ntropy_emulator, state_store, make_rows, tmp_path
) -> None:
    rows = make_rows(26)
    rows[20] = {**rows[20], "id": rows[3]["id"]}  # a repeat
    (tmp_path / "ok").mkdir()
    pq.write_table(pa.table({"transaction_id": ["t0"]}), tmp_path / "ok" / "part-0.parquet")  # enriched
    ntropy_emulator.configure(batch_error_rate=1.0, items_per_second=100_000)
    operator = _HealingSubmit(
        emulator=ntropy_emulator,
        task_id="submit_and_wait",
        items=rows,
        chunk_size=10,
        skip_enriched=str(tmp_path),
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.02,
        max_poll_interval=0.2,
    )
    result = operator.execute({"task_state_store": state_store})

    assert (result["total"], result["duplicates"], result["skipped"]) == (24, 1, 1)
    _check_invariant(result)
    # The emulator counts a batch's end in a background task, a moment after its status reads as ended.
    stats = wait_for(lambda: (s := ntropy_emulator.stats())["batches_errored"] >= 3 and s)
    assert (stats["batches_created"], stats["batches_errored"]) == (6, 3)
    assert stats["transactions_submitted"] == 48 == result["credits"], "an errored batch is paid again"


def test_a_dataframe_input_is_deduplicated_and_skipped_too(ntropy_connection, make_rows, tmp_path) -> None:
    pd = pytest.importorskip("pandas")
    rows = make_rows(30)
    rows[29] = {**rows[29], "id": rows[0]["id"]}
    (tmp_path / "ok").mkdir()
    pq.write_table(pa.table({"transaction_id": ["t5", "t6"]}), tmp_path / "ok" / "part-0.parquet")
    operator = SubmitBatchOperator(
        task_id="submit", items=pd.DataFrame(rows), chunk_size=10, skip_enriched=str(tmp_path), dry_run=True
    )
    result = operator.execute({})
    assert (result["duplicates"], result["skipped"], result["credits"], result["batches"]) == (1, 2, 27, 3)
    _check_invariant(result)
