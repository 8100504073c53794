"""``ntropy-emulator`` / ``python -m ntropy_provider.emulator``: serve the Ntropy API emulator.

The API's documented per-key limits are on by default (docs/ntropy-api.md, "Limits"); ``--limits off``
turns them all off. Settings can be changed while it runs with ``PATCH /_emulator/settings`` (JSON body
of setting names).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ntropy_provider.api.limits import (
    DEFAULT_CREDIT_CAPACITY,
    DEFAULT_CREDIT_REFILL_PER_SECOND,
    DEFAULT_MAX_OPEN_BATCHES,
)
from ntropy_provider.emulator.settings import (
    DEFAULT_API_KEY,
    DEFAULT_ITEMS_PER_SECOND,
    DEFAULT_WEBHOOK_DISABLE_AFTER_FAILURES,
    ENDPOINT_LIMIT_MODES,
    EmulatorSettings,
)


def build_parser() -> argparse.ArgumentParser:
    """The command line parser."""
    parser = argparse.ArgumentParser(
        prog="ntropy-emulator",
        description="A local Ntropy API v3 server for tests and demos. Admin routes: "
        "GET|PATCH /_emulator/settings, GET /_emulator/stats, POST /_emulator/reset.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="port to listen on (default 8900)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"an accepted X-API-Key (repeatable; default {DEFAULT_API_KEY!r})",
    )
    parser.add_argument(
        "--items-per-second",
        type=float,
        default=DEFAULT_ITEMS_PER_SECOND,
        help=f"simulated enrichment speed of each batch (default {DEFAULT_ITEMS_PER_SECOND:g})",
    )
    parser.add_argument(
        "--limits",
        choices=("on", "off"),
        default="on",
        help="enforce the API's documented per-key limits below (default on)",
    )
    parser.add_argument(
        "--credit-capacity",
        type=int,
        default=DEFAULT_CREDIT_CAPACITY,
        help=f"most credits an API key holds, one per transaction (default {DEFAULT_CREDIT_CAPACITY})",
    )
    parser.add_argument(
        "--credit-refill-per-second",
        type=float,
        default=DEFAULT_CREDIT_REFILL_PER_SECOND,
        help=f"credits refilled per second (default {DEFAULT_CREDIT_REFILL_PER_SECOND:g})",
    )
    parser.add_argument(
        "--max-open-batches",
        type=int,
        default=DEFAULT_MAX_OPEN_BATCHES,
        help=f"most batches in progress per API key (default {DEFAULT_MAX_OPEN_BATCHES})",
    )
    parser.add_argument(
        "--endpoint-limits",
        choices=ENDPOINT_LIMIT_MODES,
        default="documented",
        help="per-endpoint request rates: the documented ones, or off (default documented)",
    )
    parser.add_argument(
        "--webhook-disable-after-failures",
        type=int,
        default=DEFAULT_WEBHOOK_DISABLE_AFTER_FAILURES,
        help="consecutive failed deliveries that disable a webhook; 0: never "
        f"(default {DEFAULT_WEBHOOK_DISABLE_AFTER_FAILURES})",
    )
    parser.add_argument(
        "--webhook-duplicate-rate",
        type=float,
        default=0.0,
        help="fraction of successful webhook deliveries delivered once more (default 0)",
    )
    parser.add_argument(
        "--extended-accounting-categories",
        action="store_true",
        help="also emit the accounting values 'investing' and 'not enough information' "
        "(documented; ntropy-sdk 5.7.0 rejects them)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument(
        "--rate-limit", type=float, default=0.0, help="requests per second per key; beyond it 429 (0: off)"
    )
    parser.add_argument("--fail-rate", type=float, default=0.0, help="fraction of requests answered 503")
    parser.add_argument(
        "--batch-error-rate", type=float, default=0.0, help="fraction of batches that end in status error"
    )
    parser.add_argument(
        "--item-error-rate", type=float, default=0.0, help="fraction of items that get internal_error"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API request")
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and serve until interrupted.

    :param argv: the arguments (``sys.argv[1:]`` when omitted).
    :return: the exit status.
    """
    args = build_parser().parse_args(argv)
    try:
        settings = EmulatorSettings().updated(
            {
                "api_keys": args.api_keys or [DEFAULT_API_KEY],
                "items_per_second": args.items_per_second,
                "seed": args.seed,
                "rate_limit": args.rate_limit,
                "fail_rate": args.fail_rate,
                "batch_error_rate": args.batch_error_rate,
                "item_error_rate": args.item_error_rate,
                "latency_ms": args.latency_ms,
                "limits": args.limits == "on",
                "credit_capacity": args.credit_capacity,
                "credit_refill_per_second": args.credit_refill_per_second,
                "max_open_batches": args.max_open_batches,
                "endpoint_limits": args.endpoint_limits,
                "webhook_disable_after_failures": args.webhook_disable_after_failures,
                "webhook_duplicate_rate": args.webhook_duplicate_rate,
                "extended_accounting_categories": args.extended_accounting_categories,
            }
        )
    except ValueError as err:
        print(f"ntropy-emulator: {err}", file=sys.stderr)
        return 2

    import uvicorn

    from ntropy_provider.emulator.app import create_asgi_app
    from ntropy_provider.emulator.core import Emulator

    print(
        f"Ntropy API emulator on http://{args.host}:{args.port} "
        f"({len(settings.api_keys)} API key(s); {settings.items_per_second:g} items/s per batch; "
        f"documented limits {'on' if settings.limits else 'off'})",
        file=sys.stderr,
    )
    uvicorn.run(create_asgi_app(Emulator(settings)), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
