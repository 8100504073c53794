"""The API key never shows: not in a log line (DEBUG included, HttpHook's and urllib3's), an exception,
a traceback or a repr, whatever the calls do (successes, 404, 422, retries, refused keys)."""

from __future__ import annotations

import asyncio
import logging
import pickle
import traceback

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.hooks.ntropy_async import NtropyAsyncHook

KEY = "nk_live_9f3Kq7ZxP2sL0wV5"
WRONG_KEY = "nk_wrong_77Hq2Lm9Rt"


def _route_hook_logs_to_stdlib(hook: NtropyHook | NtropyAsyncHook, name: str) -> None:
    # Airflow's structlog output masks registered secrets and drops DEBUG; a plain stdlib logger does
    # neither, so what the hook (and HttpHook's code) logs is captured raw, at every level.
    hook._log = logging.getLogger(f"ntropy.secrets-test.{name}")


def test_the_api_key_appears_nowhere(
    ntropy_emulator, conn_factory, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture, make_rows
) -> None:
    caplog.set_level(logging.DEBUG)
    ntropy_emulator.configure(api_keys=[KEY])
    conn_id = conn_factory(host=ntropy_emulator.url, password=KEY, extra={"backoff_base": 0.01})
    bad_conn_id = conn_factory(host=ntropy_emulator.url, password=WRONG_KEY)
    hook = NtropyHook(conn_id)
    _route_hook_logs_to_stdlib(hook, "sync")
    seen: list[object] = [hook, hook.settings]
    errors: list[BaseException] = []

    def attempt(call, *args, **kwargs):
        try:
            result = call(*args, **kwargs)
        except Exception as err:
            errors.append(err)
            return None
        seen.append(result)
        return result

    assert attempt(hook.test_connection) == (True, attempt(hook.test_connection)[1])
    batches = attempt(hook.submit_batches, make_rows(30), chunk_size=10)
    attempt(hook.wait_for_batches, [b.id for b in batches], poll_interval=0.05, timeout=30)
    attempt(hook.get_batch_results, batches[0].id)
    attempt(lambda: list(hook.list_batches(page_size=1)))
    attempt(hook.get_batch, "unknown")
    bad_rows = list(make_rows(2))
    bad_rows[1]["date"] = "yesterday"
    attempt(hook.create_batch, bad_rows)
    attempt(hook.ensure_webhook, "https://example.com/hook", ["batches.completed"], "webhook-token-123")
    attempt(hook.ensure_account_holder, "holder-1", "consumer")
    attempt(hook.run, "/v3/batches")  # HttpHook's run(), which goes through the hook's own request loop
    attempt(hook.run, "/v3/batches/unknown")
    ntropy_emulator.configure(fail_rate=0.5, rate_limit=50, seed=5)
    attempt(hook.submit_batches, make_rows(40), chunk_size=5)
    ntropy_emulator.configure(fail_rate=0.0, drop_connection_rate=1.0)
    attempt(NtropyHook(conn_id, max_attempts=2, backoff_base=0.01).get_batch, "x")
    ntropy_emulator.configure(drop_connection_rate=0.0)
    bad = NtropyHook(bad_conn_id)
    _route_hook_logs_to_stdlib(bad, "bad")
    attempt(bad.get_batch, "x")
    attempt(bad.test_connection)

    async def async_calls() -> None:
        async_hook = NtropyAsyncHook(conn_id)
        _route_hook_logs_to_stdlib(async_hook, "async")
        seen.append(async_hook)
        async with async_hook:
            batch = await async_hook.create_batch(make_rows(3))
            seen.append(await async_hook.get_batch(batch.id))
            seen.extend([b async for b in async_hook.list_batches(page_size=2)])
            try:
                await async_hook.get_batch_results("unknown")
            except Exception as err:
                errors.append(err)
        try:
            await NtropyAsyncHook(bad_conn_id).get_batch("x")
        except Exception as err:
            errors.append(err)

    asyncio.run(async_calls())

    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    # The capture is real: request ids, retries, HttpHook's and urllib3's debug lines are in it.
    assert "X-Request-ID" in logged and "retrying in" in logged
    # run() no longer takes HttpHook's request path (it goes through the retry policy), so its
    # "Sending 'GET' to url" line is gone; the run() calls are logged by the exchange instead.
    assert "GET /v3/batches/unknown -> 404" in logged and "Starting new HTTP connection" in logged
    assert len(errors) >= 6 and all(isinstance(e, AirflowException) for e in errors)
    rendered = [
        logged,
        *(repr(obj) for obj in seen),
        *(str(e) + repr(e) + "".join(traceback.format_exception(e)) for e in errors),
        *(repr(pickle.loads(pickle.dumps(e))) for e in errors if hasattr(e, "request_id")),
    ]
    for text in rendered:
        assert KEY not in text
        assert WRONG_KEY not in text
        assert "webhook-token-123" not in text

    # And a key that did reach a log line would have been caught by this capture.
    logging.getLogger("ntropy.secrets-test.canary").debug("canary %s", KEY)
    assert KEY in caplog.text
