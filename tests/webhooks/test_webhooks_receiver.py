"""The receiver against its security and bad-input list, over real HTTP (uvicorn on loopback), with
every outcome checked in Airflow's metadata database."""

from __future__ import annotations

import asyncio
import random
import uuid

import httpx
import orjson
import pytest

from ntropy_provider.api.wire import WEBHOOK_EVENT_BATCH_COMPLETED, WEBHOOK_EVENT_BATCH_ERROR
from ntropy_provider.webhooks.config import ReceiverConfig


def post(
    receiver, body, *, token: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST ``body`` (a dict as JSON, or raw bytes) to the receiver."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    all_headers = {"Content-Type": "application/json", **receiver.headers(token), **(headers or {})}
    return httpx.post(receiver.webhook_url, content=content, headers=all_headers, timeout=10)


def recorded_event_ids(receiver, kit) -> list[str]:
    return [extra["event_id"] for extra in kit.asset_events(receiver.conn_id)]


class TestAuthentication:
    def test_valid_token_records_the_event_with_its_batch_details(self, receiver, kit):
        body = kit.batch_event(total=7)
        response = post(receiver, body)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "recorded"
        [extra] = kit.asset_events(receiver.conn_id)
        assert extra == {
            "event_id": body["event_id"],
            "event_type": WEBHOOK_EVENT_BATCH_COMPLETED,
            "batch_id": body["data"]["id"],
            "status": "completed",
            "total": 7,
            "progress": 7,
            "conn_id": receiver.conn_id,
            "batch": body["data"],
        }
        assert response.json()["asset_event_id"] is not None

    def test_no_token_is_refused_and_nothing_is_recorded(self, receiver, kit):
        response = httpx.post(receiver.webhook_url, content=orjson.dumps(kit.batch_event()), timeout=10)
        assert response.status_code == 401
        assert "X-Ntropy-Token" in response.json()["detail"]
        assert kit.asset_events(receiver.conn_id) == []

    @pytest.mark.parametrize(
        "wrong",
        [
            pytest.param("x" * 43, id="same-length"),
            pytest.param("short", id="shorter"),
            pytest.param("y" * 5000, id="much-longer"),
            pytest.param("", id="empty"),
        ],
    )
    def test_wrong_token_of_any_length_is_refused(self, receiver, wrong, kit):
        response = post(receiver, kit.batch_event(), token=wrong)
        assert response.status_code == 401
        assert kit.asset_events(receiver.conn_id) == []

    def test_token_that_is_a_prefix_of_the_right_one_is_refused(self, receiver, kit):
        response = post(receiver, kit.batch_event(), token=receiver.token[:-1])
        assert response.status_code == 401

    def test_non_ascii_token_bytes_are_refused_without_crashing(self, receiver, kit):
        headers = [
            ("X-Ntropy-Token", "caf\u00e9\u00ff".encode("latin-1")),
            ("Content-Type", "application/json"),
        ]
        response = httpx.post(receiver.webhook_url, content=orjson.dumps(kit.batch_event()), headers=headers)
        assert response.status_code == 401

    def test_token_of_another_served_connection_is_refused(self, receiver_factory, kit):
        second = receiver_factory()
        first = receiver_factory(extra_conn_ids=(second.conn_id,))
        response = httpx.post(
            f"{first.url}/ntropy/webhooks/{second.conn_id}",
            content=orjson.dumps(kit.batch_event()),
            headers=first.headers(),
        )
        assert response.status_code == 401
        assert kit.asset_events(second.conn_id) == []

    def test_connection_without_a_configured_token_refuses_everything(self, receiver_factory, kit):
        receiver = receiver_factory(extra={"webhook_token": ""})
        for token in ("", "anything"):
            assert post(receiver, kit.batch_event(), token=token).status_code == 401

    def test_connection_not_served_is_the_same_401_without_a_lookup(self, receiver_factory, kit):
        other = receiver_factory()  # exists, with a token, but this receiver does not serve it
        receiver = receiver_factory()
        lookups: list[str] = []
        resolver = receiver.app.state.resolver
        original = resolver.get

        async def spy(conn_id: str) -> str | None:
            lookups.append(conn_id)
            return await original(conn_id)

        resolver.get = spy
        for conn_id in ("no_such_connection", other.conn_id):
            response = httpx.post(
                f"{receiver.url}/ntropy/webhooks/{conn_id}",
                content=orjson.dumps(kit.batch_event()),
                headers=other.headers(),
            )
            # The very answer a wrong token gets: an unauthenticated caller cannot tell which ids exist.
            assert response.status_code == 401
            assert response.json() == post(receiver, kit.batch_event(), token="wrong").json()
        assert lookups == [receiver.conn_id] * 2
        assert kit.asset_events(other.conn_id) == []

    def test_second_served_connection_records_on_its_own_asset(self, receiver_factory, kit):
        second = receiver_factory()
        first = receiver_factory(extra_conn_ids=(second.conn_id,))
        body = kit.batch_event()
        response = httpx.post(
            f"{first.url}/ntropy/webhooks/{second.conn_id}",
            content=orjson.dumps(body),
            headers=second.headers(),
        )
        assert response.json()["status"] == "recorded"
        assert [e["conn_id"] for e in kit.asset_events(second.conn_id)] == [second.conn_id]
        assert kit.asset_events(first.conn_id) == []

    def test_token_from_an_airflow_variable(self, receiver_factory, monkeypatch, kit):
        monkeypatch.setenv("AIRFLOW_VAR_NTROPY_HOOK_TOKEN_TEST", "variable-token-123")
        conn_id = f"ntropy_var_{uuid.uuid4().hex[:8]}"
        config = ReceiverConfig(conn_id=conn_id, token_variable="NTROPY_HOOK_TOKEN_TEST")
        receiver = receiver_factory(config=config)
        kit.register_consumer_dag(conn_id, f"consumer_{conn_id}")
        url = f"{receiver.url}/ntropy/webhooks"
        body = orjson.dumps(kit.batch_event())
        refused = httpx.post(url, content=body, headers={"X-Ntropy-Token": receiver.token})
        assert refused.status_code == 401  # the connection's extra is not used when a variable is named
        accepted = httpx.post(url, content=body, headers={"X-Ntropy-Token": "variable-token-123"})
        assert accepted.status_code == 200, accepted.text
        assert len(kit.asset_events(conn_id)) == 1


class TestBadInput:
    def test_malformed_json_is_a_400_naming_the_problem(self, receiver, kit):
        response = post(receiver, b'{"event_id": "e1", "event_type": ')
        assert response.status_code == 400
        assert "not valid JSON" in response.json()["detail"]
        assert kit.asset_events(receiver.conn_id) == []

    def test_empty_body_is_a_400(self, receiver):
        response = post(receiver, b"")
        assert response.status_code == 400
        assert "empty" in response.json()["detail"]

    def test_invalid_utf8_is_a_400(self, receiver):
        response = post(receiver, b'{"event_id": "\xff\xfe"}')
        assert response.status_code == 400

    @pytest.mark.parametrize(
        ("mutate", "field"),
        [
            pytest.param(lambda body: body.pop("event_id"), "event_id", id="no-event-id"),
            pytest.param(lambda body: body.update(event_type=5), "event_type", id="event-type-not-str"),
            pytest.param(lambda body: body.update(data=[1]), "data", id="data-not-object"),
            pytest.param(lambda body: body["data"].pop("status"), "data", id="batch-without-status"),
            pytest.param(lambda body: body["data"].update(status="done"), "data", id="unknown-status"),
            pytest.param(lambda body: body.update(event_id="e" * 500), "event_id", id="huge-event-id"),
            # PostgreSQL's driver refuses NUL in text before SQL is sent: bad input, not a 500.
            pytest.param(lambda body: body.update(event_id="ev\u0000t"), "event_id", id="nul-in-event-id"),
            pytest.param(lambda body: body["data"].update(id="b\u00001"), "data.id", id="nul-in-batch-id"),
            pytest.param(lambda body: body["data"].update(id="b\n1"), "data.id", id="newline-in-batch-id"),
            # Valid ISO 8601, but converting it to UTC leaves datetime's range (OverflowError).
            pytest.param(
                lambda body: body["data"].update(created_at="0001-01-01T00:00:00+01:00"),
                "data",
                id="datetime-out-of-range",
            ),
        ],
    )
    def test_wrong_shape_is_a_422_naming_the_field(self, receiver, mutate, field, kit):
        body = kit.batch_event()
        mutate(body)
        response = post(receiver, body)
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith(field)
        assert kit.asset_events(receiver.conn_id) == []

    def test_json_that_is_not_an_object_is_a_422(self, receiver):
        response = post(receiver, b"[1, 2, 3]")
        assert response.status_code == 422
        assert "object" in response.json()["detail"]

    def test_5mb_body_is_refused_with_413(self, receiver, kit):
        response = post(receiver, b'{"pad": "' + b"a" * (5 * 1024 * 1024) + b'"}')
        assert response.status_code == 413
        assert "larger than" in response.json()["detail"]
        assert kit.asset_events(receiver.conn_id) == []

    def test_5mb_chunked_body_without_content_length_is_refused_with_413(self, receiver, kit):
        def chunks():
            yield b'{"pad": "'
            for _ in range(80):
                yield b"a" * 65536
            yield b'"}'

        response = httpx.post(receiver.webhook_url, content=chunks(), headers=receiver.headers(), timeout=10)
        assert response.status_code == 413
        assert kit.asset_events(receiver.conn_id) == []

    def test_large_body_without_a_token_is_refused_before_it_is_read(self, receiver):
        response = post(receiver, b"a" * (5 * 1024 * 1024), token="")
        assert response.status_code == 401

    def test_unknown_event_type_is_accepted_and_ignored(self, receiver, kit):
        body = {"event_id": str(uuid.uuid4()), "event_type": "reports.resolved", "data": {"id": "r1"}}
        response = post(receiver, body)
        assert response.status_code == 200
        assert response.json()["status"] == "ignored"
        assert kit.asset_events(receiver.conn_id) == []


class TestRecording:
    def test_error_event_is_recorded_with_its_status(self, receiver, kit):
        body = kit.batch_event(WEBHOOK_EVENT_BATCH_ERROR)
        assert post(receiver, body).status_code == 200
        [extra] = kit.asset_events(receiver.conn_id)
        assert (extra["event_type"], extra["status"]) == (WEBHOOK_EVENT_BATCH_ERROR, "error")

    def test_each_batch_queues_its_own_run_of_the_partitioned_consumer(self, receiver, kit):
        consumer = f"consumer_{receiver.conn_id}"
        assert kit.queued_runs(consumer) == []
        bodies = [kit.batch_event() for _ in range(3)]
        for body in bodies:  # in a burst: Airflow must not fold them into one run and drop the rest
            assert post(receiver, body).status_code == 200
        assert kit.queued_runs(consumer) == sorted(b["data"]["id"] for b in bodies)

    def test_plain_consumer_is_queued_when_partitioning_is_off(self, receiver_factory, kit):
        receiver = receiver_factory(settings={"partition_by_batch": False})
        assert post(receiver, kit.batch_event()).status_code == 200
        assert post(receiver, kit.batch_event()).status_code == 200
        assert kit.queued_runs(f"consumer_{receiver.conn_id}") == ["*"]  # one queue entry per asset
        assert len(kit.asset_events(receiver.conn_id)) == 2

    def test_partitioned_events_are_refused_when_only_a_plain_consumer_exists(self, receiver_factory, kit):
        # Airflow queues only partition-aware DAGs for partition-keyed events: recording would lose it.
        receiver = receiver_factory(register_asset=False)
        kit.register_consumer_dag(receiver.conn_id, f"plain_{receiver.conn_id}", partitioned=False)
        refused = post(receiver, kit.batch_event())
        assert refused.status_code == 503
        assert "PartitionedAssetTimetable" in refused.json()["detail"]
        assert kit.asset_events(receiver.conn_id) == []

    def test_paused_consumer_means_refused_then_recorded_once_unpaused(self, receiver, kit):
        consumer = f"consumer_{receiver.conn_id}"
        kit.set_paused(consumer, True)
        body = kit.batch_event()
        refused = post(receiver, body)
        assert refused.status_code == 503
        assert "unpause" in refused.json()["detail"]
        assert kit.asset_events(receiver.conn_id) == []
        kit.set_paused(consumer, False)
        assert post(receiver, body).json()["status"] == "recorded"  # Ntropy's retry
        assert kit.queued_runs(consumer) == [body["data"]["id"]]

    def test_paused_consumer_is_not_waited_for_when_not_required(self, receiver_factory, kit):
        receiver = receiver_factory(settings={"require_active_consumer": False})
        kit.set_paused(f"consumer_{receiver.conn_id}", True)
        assert post(receiver, kit.batch_event()).json()["status"] == "recorded"
        assert kit.queued_runs(f"consumer_{receiver.conn_id}") == []

    def test_integrity_error_inside_airflow_is_retried_not_taken_for_a_duplicate(
        self, receiver, kit, monkeypatch
    ):
        from airflow.assets.manager import asset_manager
        from sqlalchemy.exc import IntegrityError

        original = asset_manager.register_asset_change
        failures = [IntegrityError("INSERT INTO asset_partition_dag_run ...", {}, Exception("unique"))]

        def flaky(**kwargs):
            if failures:
                raise failures.pop()
            return original(**kwargs)

        monkeypatch.setattr(asset_manager, "register_asset_change", flaky)
        body = kit.batch_event()
        refused = post(receiver, body)
        assert refused.status_code == 503, refused.text  # not 200 "duplicate": the event was not recorded
        assert kit.asset_events(receiver.conn_id) == []
        retried = post(receiver, body)  # Ntropy's retry
        assert retried.json()["status"] == "recorded"
        assert recorded_event_ids(receiver, kit) == [body["event_id"]]

    def test_replayed_event_id_is_accepted_and_recorded_once(self, receiver, kit):
        body = kit.batch_event()
        answers = [post(receiver, body) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.json()["status"] for a in answers] == ["recorded", "duplicate", "duplicate"]
        assert recorded_event_ids(receiver, kit) == [body["event_id"]]

    def test_same_event_id_on_another_connection_is_a_different_event(self, receiver_factory, kit):
        first, second = receiver_factory(), receiver_factory()
        body = kit.batch_event()
        assert post(first, body).json()["status"] == "recorded"
        assert post(second, body).json()["status"] == "recorded"
        assert recorded_event_ids(first, kit) == recorded_event_ids(second, kit) == [body["event_id"]]

    def test_concurrent_copies_of_one_event_are_recorded_once(self, receiver, kit):
        body = orjson.dumps(kit.batch_event())

        async def send_copies() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                return await asyncio.gather(
                    *(
                        client.post(receiver.webhook_url, content=body, headers=receiver.headers())
                        for _ in range(25)
                    )
                )

        answers = asyncio.run(send_copies())
        assert {a.status_code for a in answers} == {200}
        statuses = sorted(a.json()["status"] for a in answers)
        assert statuses == ["duplicate"] * 24 + ["recorded"]
        assert len(kit.asset_events(receiver.conn_id)) == 1

    def test_event_for_an_asset_no_dag_uses_is_a_503_and_recorded_once_the_dag_exists(
        self, receiver_factory, kit
    ):
        receiver = receiver_factory(register_asset=False)
        body = kit.batch_event()
        refused = post(receiver, body)
        assert refused.status_code == 503
        assert "Retry-After" in refused.headers
        assert "no unpaused DAG is scheduled on asset" in refused.json()["detail"]
        # The refusal must not have claimed the event id: Ntropy's retry records it.
        kit.register_consumer_dag(receiver.conn_id, f"late_consumer_{receiver.conn_id}")
        retried = post(receiver, body)
        assert retried.json()["status"] == "recorded"
        assert recorded_event_ids(receiver, kit) == [body["event_id"]]

    def test_flood_of_1000_deliveries_none_lost_none_doubled(self, receiver, kit):
        distinct = [kit.batch_event() for _ in range(1000)]
        replays = distinct[::10]  # 100 of them are delivered twice, the copies anywhere in the stream
        deliveries = [orjson.dumps(body) for body in distinct + replays]
        random.Random(7).shuffle(deliveries)
        headers = receiver.headers()

        async def flood() -> list[httpx.Response]:
            gate = asyncio.Semaphore(32)
            limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:

                async def deliver(body: bytes) -> httpx.Response:
                    async with gate:
                        return await client.post(receiver.webhook_url, content=body, headers=headers)

                return await asyncio.gather(*(deliver(body) for body in deliveries))

        answers = asyncio.run(flood())
        assert len(answers) == 1100
        assert {a.status_code for a in answers} == {200}
        statuses = [a.json()["status"] for a in answers]
        assert statuses.count("recorded") == 1000
        assert statuses.count("duplicate") == 100
        recorded = recorded_event_ids(receiver, kit)
        assert len(recorded) == 1000
        assert set(recorded) == {body["event_id"] for body in distinct}


def test_health_answers_without_a_token(receiver):
    response = httpx.get(f"{receiver.url}/ntropy/health")
    assert response.json() == {"status": "ok"}
