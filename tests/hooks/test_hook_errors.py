"""Typed errors: one class per meaning, carrying status, detail and request id; 422s name item and field."""

from __future__ import annotations

import pickle

import orjson
import pytest
from airflow.providers.common.compat.sdk import AirflowException

from ntropy_provider.exceptions import (
    ItemError,
    NtropyAuthError,
    NtropyError,
    NtropyNotFoundError,
    NtropyNotReadyError,
    NtropyOutOfCreditsError,
    NtropyRateLimitError,
    NtropyServerError,
    NtropyValidationError,
    error_class_for_status,
    parse_item_errors,
)
from ntropy_provider.hooks.exchange import error_for_answer

RID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, NtropyValidationError),
        (401, NtropyAuthError),
        (403, NtropyAuthError),
        (404, NtropyNotFoundError),
        (409, NtropyNotReadyError),
        (422, NtropyValidationError),
        (423, NtropyOutOfCreditsError),
        (429, NtropyRateLimitError),
        (500, NtropyServerError),
        (503, NtropyServerError),
        (418, NtropyError),
    ],
)
def test_one_class_per_status(status: int, cls: type) -> None:
    assert error_class_for_status(status) is cls
    assert issubclass(cls, AirflowException)


def test_error_carries_status_detail_and_request_id() -> None:
    error = error_for_answer(
        method="GET",
        path="/v3/batches/nope",
        status=404,
        body=b'{"detail": "Batch not found"}',
        request_id=RID,
        api_key="k-123456",
        attempts=1,
    )
    assert isinstance(error, NtropyNotFoundError)
    assert (error.status, error.detail, error.request_id) == (404, "Batch not found", RID)
    assert (
        str(error) == f"Ntropy API answered 404 to GET /v3/batches/nope: Batch not found (X-Request-ID {RID})"
    )


def test_fastapi_422_names_item_and_field() -> None:
    detail = [
        {"loc": ["body", "data", 3, "amount"], "msg": "Input should be >= 0", "type": "greater_than_equal"},
        {"loc": ["body", "data", 7, "location", "country"], "msg": "bad country"},
        {"loc": ["body", "operation"], "msg": "unknown operation"},
    ]
    error = error_for_answer(
        method="POST",
        path="/v3/batches",
        status=422,
        body=orjson.dumps({"detail": detail}),
        request_id=RID,
        api_key="k-123456",
        attempts=1,
    )
    assert isinstance(error, NtropyValidationError)
    assert error.errors == (
        ItemError(3, "amount", "Input should be >= 0"),
        ItemError(7, "location.country", "bad country"),
        ItemError(None, "operation", "unknown operation"),
    )
    assert "item 3, field amount: Input should be >= 0" in str(error)
    assert "item 7, field location.country: bad country" in str(error)


def test_index_field_form_of_422_is_understood_too() -> None:
    assert parse_item_errors([{"index": 2, "field": "date", "message": "expected YYYY-MM-DD"}]) == [
        ItemError(2, "date", "expected YYYY-MM-DD")
    ]
    assert parse_item_errors("plain string") == []


def test_non_json_error_body_and_echoed_key_are_handled() -> None:
    error = error_for_answer(
        method="GET",
        path="/v3/batches",
        status=401,
        body=b"<html>bad key k-123456</html>",
        request_id=RID,
        api_key="k-123456",
        attempts=1,
    )
    assert isinstance(error, NtropyAuthError)
    assert "k-123456" not in str(error)
    assert "<html>bad key ***</html>" in str(error)
    assert "k-123456" not in str(error.detail)
    echoed = error_for_answer(
        method="GET",
        path="/v3/batches",
        status=401,
        body=orjson.dumps({"detail": "invalid key k-123456"}),
        request_id=RID,
        api_key="k-123456",
        attempts=1,
    )
    assert echoed.detail == "invalid key ***"  # kept on the exception, quoted by test_connection


def test_errors_survive_pickling() -> None:
    error = NtropyValidationError(
        "refused", status=422, detail=[{"loc": ["body"]}], request_id=RID, errors=[ItemError(1, "id", "x")]
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is NtropyValidationError
    assert (str(copy), copy.status, copy.request_id, copy.errors) == ("refused", 422, RID, error.errors)
