"""HttpHook's inherited surface on NtropyHook: ``run()`` goes through the Ntropy retry policy and errors."""

from __future__ import annotations

import pytest
import requests

from ntropy_provider.exceptions import NtropyNotFoundError, NtropyServerError
from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.hooks.retry_policy import RetryEvent


def test_run_retries_under_the_policy_and_answers_with_the_response(
    hook: NtropyHook, ntropy_emulator, retries: list[RetryEvent]
) -> None:
    ntropy_emulator.configure(fail_rate=0.5, fail_status=503, seed=7)
    for _ in range(6):
        response = hook.run("/v3/batches", {"limit": 1})
        assert isinstance(response, requests.Response) and response.status_code == 200
    assert len(retries) == ntropy_emulator.stats()["faults"]["failed"] > 0
    assert hook.base_url == ntropy_emulator.url  # HttpHook's public base_url, from the ntropy connection
    assert hook.url_from_endpoint("/v3/batches") == ntropy_emulator.url + "/v3/batches"


def test_run_raises_typed_errors(ntropy_connection, ntropy_emulator) -> None:
    hook = NtropyHook(ntropy_connection, max_attempts=3, backoff_base=0.01)
    with pytest.raises(NtropyNotFoundError):
        hook.run("v3/batches/unknown")
    ntropy_emulator.configure(fail_rate=1.0, fail_status=500)
    with pytest.raises(NtropyServerError, match="after 3 attempts"):
        hook.run("/v3/batches")


def test_run_posts_a_json_body_once(ntropy_connection, ntropy_emulator, make_rows) -> None:
    poster = NtropyHook(ntropy_connection, method="POST")
    body = {"operation": "POST /v3/transactions", "priority": "default", "data": list(make_rows(3))}
    response = poster.run("/v3/batches", body)
    assert response.json()["total"] == 3
    assert ntropy_emulator.stats()["batches_created"] == 1


def test_what_the_policy_cannot_honour_is_refused(hook: NtropyHook) -> None:
    with pytest.raises(TypeError, match="extra_options and request arguments are not supported"):
        hook.run("/v3/batches", extra_options={"timeout": 5})
    with pytest.raises(TypeError, match="not supported"):
        hook.run("/v3/batches", verify=False)
    with pytest.raises(NotImplementedError, match="run\\(\\) already retries"):
        hook.run_with_advanced_retry({"stop": None}, "/v3/batches")
