"""The conversion of a results body (the API's JSON bytes) to Arrow, on hand-written bodies of every shape."""

from __future__ import annotations

import datetime as dt
import json

import orjson
import pyarrow as pa
import pytest

from ntropy_provider.api.models import parse_datetime
from ntropy_provider.results.flatten import (
    ResultsFormatError,
    convert_and_split,
    convert_results,
    split_ok_errors,
)
from ntropy_provider.results.schema import (
    RESULTS_ARROW_SCHEMA,
    RESULTS_SCHEMA_VERSION,
    RESULTS_SCHEMA_VERSION_KEY,
)

UTC = dt.UTC

ORGANIZATION = {
    "id": "t-org",
    "created_at": "2024-03-30T00:00:00Z",
    "entities": {
        "counterparty": {
            "type": "organization",
            "id": "d4bc3c80",
            "name": "Starbucks",
            "website": "starbucks.com",
            "logo": "https://logos.ntropy.com/starbucks.com",
            "mccs": [5814, 5812],
            "phone_number": "+1 800-782-7282",
            "tax_number": "91-1325671",
            "naics2017": "722515",
        },
        "intermediaries": [
            {
                "id": "916bc837",
                "name": "Square, Inc.",
                "website": "squareup.com",
                "logo": None,
                "mccs": [],
                "phone_number": None,
                "tax_number": "80-0429876",
                "naics2017": "522320",
            },
            # An older answer without the three fields: they are null.
            {"id": "a1", "name": "PayPal", "website": "paypal.com", "logo": "https://l/p", "mccs": [6012]},
        ],
    },
    "categories": {"general": "coffee shops", "accounting": "operational expenses"},
    "location": {
        "raw_address": "10 Union Sq, New York, NY 10003",
        "structured": {
            "street": "10 Union Sq",
            "city": "New York",
            "state": "NY",
            "postcode": "10003",
            "country_code": "US",
            "country": "United States",
            "house_number": "10",
            "latitude": 40.73,
            "longitude": -73,
            "google_maps_url": "https://g/x",
            "apple_maps_url": "https://a/x",
            "store_number": "1234",
        },
    },
    "error": None,
    "recurrence": "one off",
}
PERSON = {
    "id": "t-person",
    "created_at": "2024-03-30T02:00:00+02:00",
    "entities": {
        "counterparty": {
            "type": "person",
            "id": "p1",
            "name": "John Smith",
            "website": None,
            "logo": None,
            "mccs": [],
        },
        "intermediaries": [],
    },
    "categories": {"general": "peer to peer transfers", "accounting": None},
    "location": None,
    "error": None,
}
NO_COUNTERPARTY = {
    "id": "t-none",
    "created_at": "2024-03-30T00:00:00.123456Z",
    "entities": {"counterparty": None, "intermediaries": []},
    "categories": {"general": None, "accounting": None},
    "location": {"raw_address": "somewhere", "structured": None},
    "error": None,
}
ENTITIES_NULL = {
    "id": "t-entities-null",
    "created_at": "2024-03-30T00:00:00Z",
    "entities": None,
    "categories": None,
    "location": None,
    "error": None,
}
ERRORED = {
    "id": "t-error",
    "created_at": "2024-03-30T00:00:00Z",
    "entities": None,
    "categories": None,
    "location": None,
    "error": {"code": "account_holder_not_found", "message": "Account holder 'h9' not found"},
}


def body(
    *results: dict, batch_id: str = "batch-1", total: int | None = None, status: str = "completed"
) -> bytes:
    return orjson.dumps(
        {
            "id": batch_id,
            "total": len(results) if total is None else total,
            "status": status,
            "results": list(results),
        }
    )


def test_every_shape_row_by_row() -> None:
    batch = convert_results(
        body(ORGANIZATION, PERSON, NO_COUNTERPARTY, ENTITIES_NULL, ERRORED), batch_id="batch-1"
    )
    assert batch.schema.equals(RESULTS_ARROW_SCHEMA, check_metadata=True)
    rows = batch.to_pylist()
    assert [row["transaction_id"] for row in rows] == [
        "t-org",
        "t-person",
        "t-none",
        "t-entities-null",
        "t-error",
    ]
    assert {row["batch_id"] for row in rows} == {"batch-1"}

    org = rows[0]
    assert org["created_at"] == dt.datetime(2024, 3, 30, tzinfo=UTC)
    assert (org["counterparty_type"], org["counterparty_id"], org["counterparty_name"]) == (
        "organization",
        "d4bc3c80",
        "Starbucks",
    )
    assert org["counterparty_website"] == "starbucks.com"
    assert org["counterparty_logo"] == "https://logos.ntropy.com/starbucks.com"
    assert org["counterparty_mccs"] == [5814, 5812]
    assert (
        org["counterparty_phone_number"],
        org["counterparty_tax_number"],
        org["counterparty_naics2017"],
    ) == (
        "+1 800-782-7282",
        "91-1325671",
        "722515",
    )
    assert org["intermediaries"] == [
        {
            "id": "916bc837",
            "name": "Square, Inc.",
            "website": "squareup.com",
            "logo": None,
            "mccs": [],
            "phone_number": None,
            "tax_number": "80-0429876",
            "naics2017": "522320",
        },
        {
            "id": "a1",
            "name": "PayPal",
            "website": "paypal.com",
            "logo": "https://l/p",
            "mccs": [6012],
            "phone_number": None,
            "tax_number": None,
            "naics2017": None,
        },
    ]
    assert (org["category_general"], org["category_accounting"]) == ("coffee shops", "operational expenses")
    structured = ORGANIZATION["location"]["structured"]
    assert org["location_raw_address"] == "10 Union Sq, New York, NY 10003"
    for name, value in structured.items():
        assert org[f"location_{name}"] == value, name
    assert isinstance(org["location_longitude"], float)  # an integer in JSON still lands as float64
    assert org["error_code"] is None and org["error_message"] is None
    # recurrence is not in the schema (nor in ntropy-sdk 5.7.0's model): kept, not dropped.
    assert org["extra_json"] == '{"recurrence":"one off"}'
    assert all(row["extra_json"] is None for row in rows[1:])

    person = rows[1]
    # +02:00 is converted to UTC.
    assert person["created_at"] == dt.datetime(2024, 3, 30, tzinfo=UTC)
    assert person["counterparty_type"] == "person"
    assert person["counterparty_website"] is None and person["counterparty_mccs"] == []
    assert person["intermediaries"] == []
    assert person["category_accounting"] is None
    assert all(person[f"location_{n}"] is None for n in ("raw_address", "city", "latitude"))

    none = rows[2]
    assert none["created_at"] == dt.datetime(2024, 3, 30, 0, 0, 0, 123456, tzinfo=UTC)
    assert none["counterparty_type"] is None and none["counterparty_mccs"] is None
    assert none["location_raw_address"] == "somewhere" and none["location_city"] is None

    # An ok row whose entities are null still gets an (empty) list of intermediaries.
    assert rows[3]["intermediaries"] == [] and rows[3]["counterparty_name"] is None

    err = rows[4]
    assert (err["error_code"], err["error_message"]) == (
        "account_holder_not_found",
        "Account holder 'h9' not found",
    )
    assert (
        err["intermediaries"] is None and err["counterparty_type"] is None and err["category_general"] is None
    )


def test_all_null_columns_keep_their_types() -> None:
    batch = convert_results(body(ERRORED, {**ERRORED, "id": "t-2"}))
    assert batch.schema.equals(RESULTS_ARROW_SCHEMA)
    for name in ("counterparty_mccs", "intermediaries", "location_latitude", "created_at"):
        assert batch.schema.field(name).type == RESULTS_ARROW_SCHEMA.field(name).type
        if name != "created_at":
            assert batch.column(name).null_count == 2


def test_split_keeps_order_and_counts() -> None:
    results = [ORGANIZATION, ERRORED, PERSON, {**ERRORED, "id": "t-error-2"}, NO_COUNTERPARTY]
    converted = convert_and_split(body(*results), batch_id="batch-1")
    assert converted.batch_id == "batch-1" and converted.total == 5 and converted.rows == 5
    assert converted.ok.column("transaction_id").to_pylist() == ["t-org", "t-person", "t-none"]
    assert converted.errors.column("transaction_id").to_pylist() == ["t-error", "t-error-2"]
    assert converted.ok.schema.equals(converted.errors.schema, check_metadata=True)


def test_split_all_ok_and_all_errors_and_empty() -> None:
    ok, errors = split_ok_errors(convert_results(body(ORGANIZATION)))
    assert (ok.num_rows, errors.num_rows) == (1, 0)
    ok, errors = split_ok_errors(convert_results(body(ERRORED)))
    assert (ok.num_rows, errors.num_rows) == (0, 1)
    converted = convert_and_split(body(batch_id="empty"))
    assert (converted.batch_id, converted.ok.num_rows, converted.errors.num_rows) == ("empty", 0, 0)
    assert converted.ok.schema.equals(RESULTS_ARROW_SCHEMA, check_metadata=True)


def test_schema_version_in_metadata() -> None:
    batch = convert_results(body(ORGANIZATION))
    assert batch.schema.metadata[RESULTS_SCHEMA_VERSION_KEY] == RESULTS_SCHEMA_VERSION.encode()


def test_pretty_printed_body_gives_the_same_rows() -> None:
    pretty = json.dumps(orjson.loads(body(ORGANIZATION, PERSON, ERRORED)), indent=2).encode()
    assert convert_results(pretty).equals(convert_results(body(ORGANIZATION, PERSON, ERRORED)))


def _with_unknown_fields(item: dict) -> dict:
    extra = json.loads(json.dumps(item))
    extra["entities"]["counterparty"]["new_field"] = {"nested": [1, 2]}
    extra["entities"]["intermediaries"][1]["rating"] = 4.5
    extra["location"]["structured"]["plus_code"] = "87G8"
    extra["location"]["structured"]["floor"] = None  # null: the same as absent, not kept
    extra["something_new"] = [1]
    return extra


def test_unknown_fields_are_kept_in_extra_json_at_every_depth() -> None:
    extra = _with_unknown_fields(ORGANIZATION)
    with_extra = convert_results(body(extra, PERSON))
    without = convert_results(body(ORGANIZATION, PERSON))
    # Every other column is exactly what the same result without the unknown fields gives.
    assert with_extra.drop_columns("extra_json").equals(without.drop_columns("extra_json"))
    kept = json.loads(with_extra.column("extra_json")[0].as_py())
    assert kept == {
        "entities": {
            "counterparty": {"new_field": {"nested": [1, 2]}},
            "intermediaries": [{}, {"rating": 4.5}],
        },
        "location": {"structured": {"plus_code": "87G8"}},
        "recurrence": "one off",
        "something_new": [1],
    }
    assert with_extra.column("extra_json")[1].as_py() is None


def test_unknown_fields_of_changing_type_are_kept_too() -> None:
    """Arrow cannot infer one type for them; the known columns are read without them, then they are kept."""
    first = {**ORGANIZATION, "score": 1}
    second = {**PERSON, "score": "high", "entities": {**PERSON["entities"], "flags": {"a": True}}}
    converted = convert_results(body(first, second, ERRORED))
    assert converted.drop_columns("extra_json").equals(
        convert_results(body(ORGANIZATION, PERSON, ERRORED)).drop_columns("extra_json")
    )
    assert converted.column("extra_json").to_pylist() == [
        '{"recurrence":"one off","score":1}',
        '{"entities":{"flags":{"a":true}},"score":"high"}',  # keys sorted
        None,
    ]


def test_an_unknown_field_beside_results_is_logged_not_kept(caplog: pytest.LogCaptureFixture) -> None:
    raw = orjson.dumps(
        {"id": "batch-1", "total": 1, "status": "completed", "request_id": "r-1", "results": [PERSON]}
    )
    with caplog.at_level("WARNING", logger="ntropy_provider.results.flatten"):
        converted = convert_results(raw, batch_id="batch-1")
    assert converted.equals(convert_results(body(PERSON)))
    assert (
        "results of batch batch-1: fields of the body not kept (not per transaction): request_id"
        in caplog.text
    )


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        ("2024-03-30T00:00:00Z", dt.datetime(2024, 3, 30, tzinfo=UTC)),
        ("2024-03-30T00:00:00+00:00", dt.datetime(2024, 3, 30, tzinfo=UTC)),
        ("2024-03-30T02:30:00+02:30", dt.datetime(2024, 3, 30, tzinfo=UTC)),
        (
            "2024-03-30 00:00:00+00:00",
            dt.datetime(2024, 3, 30, tzinfo=UTC),
        ),  # str(datetime), as the SDK sends
        # Without a zone: UTC.
        ("2024-03-30T00:00:00", dt.datetime(2024, 3, 30, tzinfo=UTC)),
        ("2024-03-30T00:00:00.250", dt.datetime(2024, 3, 30, 0, 0, 0, 250000, tzinfo=UTC)),
        ("2024-03-30 00:00:00.123456", dt.datetime(2024, 3, 30, 0, 0, 0, 123456, tzinfo=UTC)),
    ],
)
@pytest.mark.parametrize("unknown", ["none", "inferred", "changing type"])
def test_created_at_with_or_without_a_zone(created_at: str, expected: dt.datetime, unknown: str) -> None:
    """Every read path (no unknown field; unknown fields inferred; read with them ignored) takes both."""
    first = {**PERSON, "created_at": created_at}
    second = {**ERRORED, "created_at": created_at}
    if unknown != "none":
        first["score"] = 1
        second["score"] = "high" if unknown == "changing type" else 2
    converted = convert_results(body(first, second))
    assert converted.column("created_at").to_pylist() == [expected, expected]
    assert converted.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert converted.column("created_at").to_pylist() == [parse_datetime(created_at)] * 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[]", "expected a JSON object"),
        (b"not json", "expected a JSON object"),
        (body(ORGANIZATION, total=3), "total is 3 but the body holds 1 results"),
        (body(ORGANIZATION, status="processing"), "status is 'processing'"),
        (body({**ORGANIZATION, "id": None}), "result 0 has no id"),
        (
            body(PERSON, {**PERSON, "id": "x", "location": {"structured": {"latitude": "north"}}}),
            r"result 1 \(id 'x'\): field location.structured.latitude: got 'north'",
        ),
        (body({**PERSON, "created_at": "yesterday"}), r"result 0 \(id 't-person'\): .*timestamp.*yesterday"),
        (
            body({**PERSON, "created_at": "2024-03-30T00:00:00.1234567Z"}),
            r"result 0 \(id 't-person'\): .*timestamp.*2024-03-30T00:00:00.1234567Z",  # beyond microseconds
        ),
        (
            body({**PERSON, "entities": {"counterparty": {"type": "person", "mccs": ["5814"]}}}),
            r"result 0 \(id 't-person'\): field entities.counterparty.mccs\[\]: got '5814'",
        ),
        (body(PERSON, 7), "result 1: expected an object, got 7"),
        (body(PERSON)[:-3], "not valid JSON"),
    ],
)
def test_malformed_bodies_are_refused_with_a_message_naming_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(ResultsFormatError, match=message) as info:
        convert_results(raw, batch_id="batch-1")
    assert "batch" in str(info.value)


def test_a_body_for_another_batch_is_refused() -> None:
    with pytest.raises(ResultsFormatError, match="the body is for batch 'batch-2'"):
        convert_results(body(ORGANIZATION, batch_id="batch-2"), batch_id="batch-1")


def test_conversion_matches_a_plain_python_flattening_on_many_rows(flatten_in_python) -> None:
    """An independent per-row flattening in Python must agree with the Arrow path on every cell."""
    results = []
    for index in range(500):
        template = [ORGANIZATION, PERSON, NO_COUNTERPARTY, ENTITIES_NULL, ERRORED][index % 5]
        results.append({**template, "id": f"t-{index:04d}"})
    batch = convert_results(body(*results, batch_id="b"))
    expected = [flatten_in_python(item, "b") for item in results]
    assert batch.to_pylist() == expected
    assert pa.Table.from_pylist(expected, schema=RESULTS_ARROW_SCHEMA).equals(pa.Table.from_batches([batch]))


def test_a_body_without_unknown_fields_builds_no_python_object_per_result(monkeypatch) -> None:
    """The common case stays on Arrow's C++ path: the Python decoding is only for unknown fields."""
    from ntropy_provider.results import flatten

    def refuse(*args: object) -> None:
        raise AssertionError("the slow path ran for a body without unknown fields")

    monkeypatch.setattr(flatten, "_unknown_fields", refuse)
    known_only = {**ORGANIZATION}
    del known_only["recurrence"]
    converted = convert_results(body(known_only, PERSON, NO_COUNTERPARTY, ENTITIES_NULL, ERRORED))
    assert converted.num_rows == 5 and converted.column("extra_json").null_count == 5


def test_only_the_parts_where_the_reader_found_unknown_fields_are_visited() -> None:
    from ntropy_provider.results.extra_fields import plan_for
    from ntropy_provider.results.schema import ENRICHED_TRANSACTION_ARROW_TYPE

    assert plan_for(ENRICHED_TRANSACTION_ARROW_TYPE, ENRICHED_TRANSACTION_ARROW_TYPE).empty
    # An unknown field in the counterparty: only entities -> counterparty is looked at.
    seen = pa.struct(
        [
            pa.field(
                "entities",
                pa.struct(
                    [
                        pa.field(
                            "counterparty",
                            pa.struct(
                                [
                                    *ENRICHED_TRANSACTION_ARROW_TYPE.field("entities")
                                    .type.field("counterparty")
                                    .type,
                                    pa.field("new", pa.string()),
                                ]
                            ),
                        ),
                        ENRICHED_TRANSACTION_ARROW_TYPE.field("entities").type.field("intermediaries"),
                    ]
                ),
            )
            if field.name == "entities"
            else field
            for field in ENRICHED_TRANSACTION_ARROW_TYPE
        ]
    )
    plan = plan_for(ENRICHED_TRANSACTION_ARROW_TYPE, seen)
    assert not plan.check_keys and list(plan.children) == ["entities"]
    entities = plan.children["entities"][1]
    assert not entities.check_keys and list(entities.children) == ["counterparty"]
    assert entities.children["counterparty"][1].check_keys
    # Not known what the reader saw (it refused to infer): every level is checked.
    everywhere = plan_for(ENRICHED_TRANSACTION_ARROW_TYPE, None)
    assert everywhere.check_keys and set(everywhere.children) == {
        "entities",
        "categories",
        "location",
        "error",
    }
