"""``python -m ntropy_provider.webhooks``: run the receiver on its own with uvicorn, with transport limits."""

from __future__ import annotations

import argparse

from ntropy_provider.webhooks.server_limits import (
    DEFAULT_HEADER_TIMEOUT_SECONDS,
    DEFAULT_KEEP_ALIVE_SECONDS,
    DEFAULT_LIMIT_CONCURRENCY,
    DEFAULT_MAX_HEADER_BYTES,
    ServerLimits,
    uvicorn_config,
)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve the stand-alone receiver until interrupted.

    :param argv: the arguments (``sys.argv[1:]`` when omitted).
    """
    parser = argparse.ArgumentParser(description="Serve the Ntropy webhook receiver (POST /ntropy/webhooks).")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port to listen on (default: 8081)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")
    parser.add_argument(
        "--max-header-bytes",
        type=int,
        default=DEFAULT_MAX_HEADER_BYTES,
        help=f"largest request line plus headers (default: {DEFAULT_MAX_HEADER_BYTES})",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT_SECONDS,
        help=f"seconds to send complete request headers (default: {DEFAULT_HEADER_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--keep-alive",
        type=int,
        default=DEFAULT_KEEP_ALIVE_SECONDS,
        help=f"seconds an idle connection stays open (default: {DEFAULT_KEEP_ALIVE_SECONDS})",
    )
    parser.add_argument(
        "--limit-concurrency",
        type=int,
        default=DEFAULT_LIMIT_CONCURRENCY,
        help=f"most open connections, beyond it 503 (default: {DEFAULT_LIMIT_CONCURRENCY})",
    )
    args = parser.parse_args(argv)
    limits = ServerLimits(
        max_header_bytes=args.max_header_bytes,
        header_timeout_seconds=args.header_timeout,
        keep_alive_seconds=args.keep_alive,
        limit_concurrency=args.limit_concurrency,
    )

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn_config(
        "ntropy_provider.webhooks.standalone:app",
        limits,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
    )
    server = uvicorn.Server(config)
    if config.workers > 1:
        # What uvicorn.run does for several workers, with our Config (it carries the header deadline).
        Multiprocess(config, target=server.run, sockets=[config.bind_socket()]).run()
    else:
        server.run()


if __name__ == "__main__":
    main()
