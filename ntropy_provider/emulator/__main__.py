"""``ntropy-emulator`` / ``python -m ntropy_provider.emulator``: serve the Ntropy API emulator.

Settings can be changed while it runs with ``PATCH /_emulator/settings`` (JSON body of setting names).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ntropy_provider.emulator.settings import DEFAULT_API_KEY, DEFAULT_ITEMS_PER_SECOND, EmulatorSettings


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
        f"({len(settings.api_keys)} API key(s); {settings.items_per_second:g} items/s per batch)",
        file=sys.stderr,
    )
    uvicorn.run(create_asgi_app(Emulator(settings)), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
