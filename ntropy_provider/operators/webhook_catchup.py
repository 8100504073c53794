"""WebhookCatchUpOperator: record the batches whose webhook delivery was lost, and re-enable the webhook."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException

from ntropy_provider.api.models import format_datetime
from ntropy_provider.api.wire import WEBHOOK_TOKEN_HEADER
from ntropy_provider.hooks.connection import WEBHOOK_CATCHUP_URL_EXTRA, WEBHOOK_URL_EXTRA
from ntropy_provider.webhooks.catchup import (
    DEFAULT_GRACE,
    DEFAULT_INITIAL_LOOKBACK,
    DEFAULT_MAX_LOOKBACK,
    DEFAULT_OVERLAP,
    Deliver,
    Delivery,
    WebhookCatchUp,
    default_watermark_variable,
    parse_watermark,
)
from ntropy_provider.webhooks.config import DEFAULT_TOKEN_EXTRA_KEY, receiver_url

#: Key, in the Ntropy connection's extras, of the receiver URL that Airflow's workers reach (optional;
#: e.g. an internal address of the API server when the public ``webhook_url`` is not reachable from them).
CATCHUP_URL_EXTRA_KEY = WEBHOOK_CATCHUP_URL_EXTRA
#: Key of the receiver's public URL (the one ``EnsureWebhookOperator`` registers).
WEBHOOK_URL_EXTRA_KEY = WEBHOOK_URL_EXTRA  # the connection module owns the extras' names


class CatchUpRefusedError(AirflowException):
    """The receiver did not record some batches (e.g. no consumer DAG unpaused): they are retried next run."""


class WebhookCatchUpOperator(BaseOperator):
    """Record, through the webhook receiver, every ended batch of a connection whose event was never recorded.

    Run it on a schedule (``ntropy_webhook_catchup`` does, every 15 minutes) next to the webhook pipeline
    (``ntropy_submit_only`` + ``ntropy_webhook_results``). Each run re-enables a webhook Ntropy disabled
    (with a warning), lists the batches created since the watermark (an Airflow Variable), and POSTs each
    one that ended more than ``grace`` ago to the receiver as its webhook event: the receiver records it
    once (``recorded``) or knows it (``duplicate``), so no batch is missed and none is processed twice. See
    :mod:`ntropy_provider.webhooks.catchup`.

    Fails, after saving the watermark, when the receiver refused batches (e.g. 503 while no consumer DAG is
    unpaused), naming them: they are retried by the next run. Returns (XCom) the run's report.

    :param ntropy_conn_id: the Ntropy connection: its API key lists the batches, its ``webhook_token``
        extra authenticates the catch-up's deliveries to the receiver.
    :param receiver_url: where to POST (default: the connection's ``webhook_catchup_url`` extra, its
        ``webhook_url`` extra, or Airflow's ``[api] base_url`` + ``/ntropy/webhooks/<conn_id>``).
    :param token_extra_key: the extra that holds the token (must match the receiver's setting).
    :param watermark_variable: the Airflow Variable that keeps the watermark (default:
        ``ntropy_webhook_catchup_watermark__<conn_id>``); delete it or move it back to re-scan.
        ``ntropy_conn_id``, ``receiver_url`` and ``watermark_variable`` are templated too.
    :param grace: how long after a batch ended it is left to the webhook (a duration, or seconds; templated,
        e.g. ``"{{ params.grace_minutes * 60 }}"``).
    :param overlap: how far before the watermark each listing starts.
    :param initial_lookback: how far back the first run looks.
    :param max_lookback: older unsettled batches no longer hold the watermark back.
    :param request_timeout: seconds to wait for the receiver's answer to one event.
    """

    template_fields: Sequence[str] = ("ntropy_conn_id", "receiver_url", "watermark_variable", "grace")
    ui_color = "#f3e5f5"

    def __init__(
        self,
        *,
        ntropy_conn_id: str = "ntropy_default",
        receiver_url: str | None = None,
        token_extra_key: str = DEFAULT_TOKEN_EXTRA_KEY,
        watermark_variable: str | None = None,
        grace: dt.timedelta | float | str = DEFAULT_GRACE,
        overlap: dt.timedelta = DEFAULT_OVERLAP,
        initial_lookback: dt.timedelta = DEFAULT_INITIAL_LOOKBACK,
        max_lookback: dt.timedelta = DEFAULT_MAX_LOOKBACK,
        request_timeout: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ntropy_conn_id = ntropy_conn_id
        self.receiver_url = receiver_url
        self.token_extra_key = token_extra_key
        self.watermark_variable = watermark_variable
        self.grace = grace
        self.overlap = overlap
        self.initial_lookback = initial_lookback
        self.max_lookback = max_lookback
        self.request_timeout = request_timeout

    def execute(self, context: Context) -> dict[str, Any]:
        """Catch up, store the new watermark, and report."""
        from airflow.sdk import Variable

        from ntropy_provider.hooks.ntropy import NtropyHook
        from ntropy_provider.operators.ensure_webhook import MissingWebhookTokenError

        hook = NtropyHook(ntropy_conn_id=self.ntropy_conn_id)
        extras = hook.get_connection(self.ntropy_conn_id).extra_dejson or {}
        token = extras.get(self.token_extra_key)
        if not isinstance(token, str) or not token:
            raise MissingWebhookTokenError(
                f"connection {self.ntropy_conn_id!r}: no {self.token_extra_key!r} in its extras; "
                "the receiver refuses deliveries without it"
            )
        url = (
            self.receiver_url
            or extras.get(CATCHUP_URL_EXTRA_KEY)
            or extras.get(WEBHOOK_URL_EXTRA_KEY)
            or receiver_url(self.ntropy_conn_id)
        )
        policy = WebhookCatchUp(
            conn_id=self.ntropy_conn_id,
            receiver_url=url,
            grace=_as_duration(self.grace, "grace"),
            overlap=self.overlap,
            initial_lookback=self.initial_lookback,
            max_lookback=self.max_lookback,
        )
        variable = self.watermark_variable or default_watermark_variable(self.ntropy_conn_id)
        watermark = parse_watermark(Variable.get(variable, default=None))
        with _HttpDeliverer(url, token, self.request_timeout) as deliver:
            report = policy.run(hook, deliver, watermark)
        Variable.set(variable, format_datetime(report.watermark_after))
        self.log.info(
            "Catch-up of %s since %s: %d batches listed, %d recorded now, %d already recorded, %d left for "
            "later, %d refused; %d webhook(s) re-enabled; watermark now %s",
            self.ntropy_conn_id,
            format_datetime(report.watermark_before),
            report.listed,
            len(report.recorded),
            report.duplicates,
            report.waiting,
            len(report.refused),
            len(report.reenabled),
            format_datetime(report.watermark_after),
        )
        if report.refused:
            named = ", ".join(f"{batch_id} ({answer})" for batch_id, answer in report.refused[:20])
            raise CatchUpRefusedError(
                f"the receiver at {url} did not record {len(report.refused)} batch(es): {named}; they are "
                "retried by the next run"
            )
        return report.to_dict()


def _as_duration(value: dt.timedelta | float | str, name: str) -> dt.timedelta:
    """A duration given as a timedelta or as seconds (a rendered template is a string)."""
    if isinstance(value, dt.timedelta):
        return value
    try:
        return dt.timedelta(seconds=float(value))
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a duration or a number of seconds, got {value!r}") from None


class _HttpDeliverer:
    """POSTs catch-up events to the receiver on one HTTP session (the token only ever in the header)."""

    def __init__(self, url: str, token: str, timeout: float) -> None:
        import requests

        self._url = url
        self._timeout = timeout
        self._session = requests.Session()
        self._session.headers.update({WEBHOOK_TOKEN_HEADER: token, "Content-Type": "application/json"})

    def __enter__(self) -> Deliver:
        return self._deliver

    def __exit__(self, *exc_info: object) -> None:
        self._session.close()

    def _deliver(self, event: dict[str, Any]) -> Delivery:
        import orjson
        import requests

        try:
            answer = self._session.post(self._url, data=orjson.dumps(event), timeout=self._timeout)
        except requests.RequestException as err:
            return Delivery(0, f"receiver unreachable ({type(err).__name__})")
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        outcome = body.get("status") if answer.ok else body.get("detail")
        return Delivery(answer.status_code, str(outcome or answer.reason)[:300])
