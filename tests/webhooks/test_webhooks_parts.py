"""The receiver's parts on their own: token comparison and caching, bounded body reading, settings,
the event records and the per-run plan, the plugin as Airflow loads it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import httpx
import orjson
import pytest
from starlette.requests import Request

from ntropy_provider.api.models import WebhookEvent
from ntropy_provider.webhooks.app import _read_body, _Rejected
from ntropy_provider.webhooks.assets import BatchEventRecord, batches_asset, batches_asset_uri
from ntropy_provider.webhooks.auth import TokenResolver, tokens_match
from ntropy_provider.webhooks.config import ReceiverConfig, receiver_url
from ntropy_provider.webhooks.events import plan_batch_events
from ntropy_provider.webhooks.recorder import EventRecorder


class TestTokensMatch:
    def test_equal_tokens_match(self):
        assert tokens_match("s3cret-token", "s3cret-token")

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("s3cret-token", "s3cret-tokeN"),
            ("s3cret", "s3cret-token"),
            ("s3cret-token-and-more", "s3cret-token"),
            (None, "s3cret-token"),
            ("", "s3cret-token"),
            ("anything", None),
            ("", ""),
            ("caf\u00e9\u00ff", "s3cret-token"),
        ],
    )
    def test_anything_else_does_not_match_and_never_raises(self, given, expected):
        assert tokens_match(given, expected) is False

    def test_utf8_token_matches_the_bytes_a_client_sends(self):
        # Starlette hands over header bytes decoded as latin-1.
        sent = "t\u00f6ken".encode().decode("latin-1")
        assert tokens_match(sent, "t\u00f6ken")


class TestTokenResolver:
    def _set_token(self, monkeypatch, conn_id: str, token: str | None) -> None:
        extra = {"webhook_token": token} if token is not None else {}
        conn = json.dumps({"conn_type": "ntropy", "extra": extra})
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn)

    def test_token_is_cached_then_reread_after_the_ttl(self, monkeypatch):
        conn_id = f"res_{uuid.uuid4().hex[:8]}"
        self._set_token(monkeypatch, conn_id, "first")
        resolver = TokenResolver(ReceiverConfig(conn_id=conn_id, token_cache_seconds=0.2))

        async def scenario() -> list[str | None]:
            seen = [await resolver.get(conn_id)]
            self._set_token(monkeypatch, conn_id, "second")
            seen.append(await resolver.get(conn_id))  # still cached
            await asyncio.sleep(0.3)  # past the TTL on purpose: this is what is tested
            seen.append(await resolver.get(conn_id))
            return seen

        assert asyncio.run(scenario()) == ["first", "first", "second"]

    def test_concurrent_misses_share_one_lookup(self, monkeypatch):
        conn_id = f"res_{uuid.uuid4().hex[:8]}"
        self._set_token(monkeypatch, conn_id, "tok")
        resolver = TokenResolver(ReceiverConfig(conn_id=conn_id))
        lookups = 0
        original = resolver._lookup

        async def counting(cid: str) -> str | None:
            nonlocal lookups
            lookups += 1
            return await original(cid)

        resolver._lookup = counting  # type: ignore[method-assign]

        async def many() -> list[str | None]:
            return await asyncio.gather(*(resolver.get(conn_id) for _ in range(50)))

        assert set(asyncio.run(many())) == {"tok"}
        assert lookups == 1

    def test_missing_connection_or_token_resolves_to_none(self, monkeypatch):
        conn_id = f"res_{uuid.uuid4().hex[:8]}"
        self._set_token(monkeypatch, conn_id, None)
        resolver = TokenResolver(ReceiverConfig(conn_id=conn_id))
        assert asyncio.run(resolver.get(conn_id)) is None
        assert asyncio.run(resolver.get("no_such_conn_anywhere")) is None

    def test_repr_never_shows_a_token(self, monkeypatch):
        conn_id = f"res_{uuid.uuid4().hex[:8]}"
        self._set_token(monkeypatch, conn_id, "very-secret-value")
        resolver = TokenResolver(ReceiverConfig(conn_id=conn_id))
        asyncio.run(resolver.get(conn_id))
        assert "very-secret-value" not in repr(resolver)


class TestReadBody:
    @staticmethod
    def _request(chunks: list[bytes], headers: dict[str, str] | None = None) -> tuple[Request, list[int]]:
        """A request whose body arrives in ``chunks``; the list counts the chunks the app pulled."""
        pulled: list[int] = []
        queue = list(chunks)

        async def receive() -> dict:
            if not queue:
                return {"type": "http.request", "body": b"", "more_body": False}
            chunk = queue.pop(0)
            pulled.append(len(chunk))
            return {"type": "http.request", "body": chunk, "more_body": bool(queue)}

        raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        scope = {"type": "http", "method": "POST", "path": "/", "headers": raw_headers}
        return Request(scope, receive), pulled

    def test_stops_pulling_as_soon_as_the_limit_is_passed(self):
        chunk = b"a" * 65536
        request, pulled = self._request([chunk] * 80)  # 5 MiB, no Content-Length
        with pytest.raises(_Rejected) as rejected:
            asyncio.run(_read_body(request, limit=100_000))
        assert rejected.value.status == 413
        assert sum(pulled) <= 100_000 + len(chunk)  # never more than one chunk past the limit
        assert len(pulled) == 2

    def test_declared_oversize_is_refused_before_reading(self):
        request, pulled = self._request([b"x" * 10], {"Content-Length": str(5 * 1024 * 1024)})
        with pytest.raises(_Rejected) as rejected:
            asyncio.run(_read_body(request, limit=65536))
        assert rejected.value.status == 413
        assert pulled == []

    def test_bad_content_length_is_a_400(self):
        request, _ = self._request([b"{}"], {"Content-Length": "many"})
        with pytest.raises(_Rejected) as rejected:
            asyncio.run(_read_body(request, limit=65536))
        assert rejected.value.status == 400

    def test_body_within_the_limit_is_returned_whole(self):
        request, _ = self._request([b'{"a":', b" 1}"])
        assert asyncio.run(_read_body(request, limit=65536)) == b'{"a": 1}'


class TestSettings:
    def test_defaults(self):
        config = ReceiverConfig()
        assert (config.conn_id, config.token_extra_key, config.max_body_bytes) == (
            "ntropy_default",
            "webhook_token",
            65536,
        )

    def test_read_from_airflow_configuration(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW__NTROPY_WEBHOOKS__CONN_ID", "ntropy_eu")
        monkeypatch.setenv("AIRFLOW__NTROPY_WEBHOOKS__MAX_BODY_BYTES", "4096")
        monkeypatch.setenv("AIRFLOW__NTROPY_WEBHOOKS__TOKEN_VARIABLE", "ntropy_token")
        config = ReceiverConfig.from_airflow_conf()
        assert config.conn_id == "ntropy_eu"
        assert config.max_body_bytes == 4096
        assert config.token_variable == "ntropy_token"

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [({"max_body_bytes": 10}, "max_body_bytes"), ({"dedupe_retention_days": 1}, "dedupe_retention_days")],
    )
    def test_unsafe_values_are_refused(self, kwargs, field):
        with pytest.raises(ValueError, match=field):
            ReceiverConfig(**kwargs)

    def test_receiver_url(self, monkeypatch):
        assert (
            receiver_url("ntropy_eu", "https://af.example.com/")
            == "https://af.example.com/ntropy/webhooks/ntropy_eu"
        )
        monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://10.0.0.5:8080")
        assert receiver_url() == "http://10.0.0.5:8080/ntropy/webhooks/ntropy_default"


def _record(event_type: str = "batches.completed", **overrides) -> BatchEventRecord:
    values = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "batch_id": str(uuid.uuid4()),
        "status": "completed" if event_type == "batches.completed" else "error",
        "total": 5,
        "progress": 5,
        "conn_id": "ntropy_default",
    }
    values.update(overrides)
    values["batch"] = {"id": values["batch_id"], "status": values["status"], "total": values["total"]}
    return BatchEventRecord(**values)


class TestEventRecords:
    def test_asset_is_named_by_connection(self):
        assert batches_asset_uri("ntropy_eu") == "ntropy://batches/ntropy_eu"
        asset = batches_asset()
        assert asset.uri == asset.name == "ntropy://batches/ntropy_default"

    def test_extra_round_trip(self):
        record = _record()
        assert BatchEventRecord.from_extra(json.loads(json.dumps(record.to_extra()))) == record

    def test_from_webhook_event(self, kit):
        body = kit.batch_event("batches.error", total=9)
        record = BatchEventRecord.from_webhook_event(WebhookEvent.from_dict(body), "c1")
        assert (record.batch_id, record.status) == (body["data"]["id"], "error")
        assert (record.total, record.conn_id) == (9, "c1")
        assert record.is_error and not record.is_completed

    def test_extra_not_written_by_the_receiver_names_what_is_missing(self):
        with pytest.raises(ValueError, match="batch_id"):
            BatchEventRecord.from_extra({"event_id": "e", "event_type": "batches.completed"})


class TestPlan:
    def test_every_collapsed_event_is_handled(self):
        completed = [_record() for _ in range(3)]
        errored = [_record("batches.error") for _ in range(2)]
        extras = [r.to_extra() for r in (completed[0], errored[0], completed[1], completed[2], errored[1])]
        plan = plan_batch_events(extras)
        assert plan.completed == completed
        assert plan.errored == errored
        assert (plan.skipped, plan.duplicates) == (0, 0)

    def test_repeated_event_or_batch_is_planned_once(self):
        first = _record()
        same_batch_other_event = _record(batch_id=first.batch_id)
        plan = plan_batch_events([first.to_extra(), first.to_extra(), same_batch_other_event.to_extra()])
        assert plan.completed == [first]
        assert plan.duplicates == 2

    def test_foreign_events_are_skipped_and_counted(self):
        plan = plan_batch_events([{}, None, {"note": "made by hand"}, _record().to_extra()])
        assert (len(plan.completed), plan.skipped) == (1, 3)


class TestRecorder:
    def test_purge_forgets_only_expired_event_ids(self, receiver, kit):
        old, fresh = kit.batch_event(), kit.batch_event()
        for body in (old, fresh):
            httpx.post(receiver.webhook_url, content=orjson.dumps(body), headers=receiver.headers())
        recorder = EventRecorder(retention=dt.timedelta(days=7))
        assert recorder.is_recorded(receiver.conn_id, old["event_id"])
        # Nothing is old enough yet; eight days from now, both are.
        assert recorder.purge() == 0
        in_eight_days = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
        assert recorder.purge(now=in_eight_days) >= 2
        assert not recorder.is_recorded(receiver.conn_id, fresh["event_id"])


class TestPlugin:
    def test_airflow_loads_the_plugin_with_the_receiver_mounted_at_ntropy(self):
        from airflow import plugins_manager

        apps, _ = plugins_manager.get_fastapi_plugins()
        ours = [a for a in apps if a["url_prefix"] == "/ntropy"]
        assert len(ours) == 1, apps
        paths = {route.path for route in ours[0]["app"].routes}
        assert {"/webhooks", "/webhooks/{conn_id}", "/health"} <= paths

    def test_entry_point_yields_the_plugin_only_when_providers_load_lazily(self, monkeypatch):
        from ntropy_provider.webhooks import plugin

        monkeypatch.setenv("AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS", "True")
        assert plugin._providers_load_lazily() is True
        monkeypatch.setenv("AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS", "False")
        assert plugin._providers_load_lazily() is False

    def test_delivery_through_airflows_own_api_server_app(self, airflow_db, monkeypatch, kit):
        """Airflow's own API server app (``airflow.api_fastapi.app.create_app``) serves the receiver."""
        from airflow import plugins_manager
        from airflow.api_fastapi.app import create_app as create_airflow_app

        # The plugin serves the configured connection, ntropy_default.
        token = "plugin-test-token-0123456789"
        conn = {"conn_type": "ntropy", "password": "k", "extra": {"webhook_token": token}}
        monkeypatch.setenv("AIRFLOW_CONN_NTROPY_DEFAULT", json.dumps(conn))
        kit.register_consumer_dag("ntropy_default", "consumer_of_ntropy_default")
        [ours] = [a for a in plugins_manager.get_fastapi_plugins()[0] if a["url_prefix"] == "/ntropy"]
        ours["app"].state.resolver.clear()  # another test may have cached this connection without a token

        server = kit.ServerThread(create_airflow_app()).start()
        try:
            url = f"{server.url}/ntropy/webhooks"
            body = kit.batch_event()
            refused = httpx.post(url, content=orjson.dumps(body), headers={"X-Ntropy-Token": "wrong"})
            accepted = httpx.post(url, content=orjson.dumps(body), headers={"X-Ntropy-Token": token})
            health = httpx.get(f"{server.url}/ntropy/health")
        finally:
            server.stop()
        assert refused.status_code == 401
        assert accepted.status_code == 200, accepted.text
        assert health.json() == {"status": "ok"}
        recorded = [e for e in kit.asset_events("ntropy_default") if e["event_id"] == body["event_id"]]
        assert len(recorded) == 1
