"""``python -m ntropy_provider.webhooks``: run the receiver on its own with uvicorn."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve the stand-alone receiver until interrupted.

    :param argv: the arguments (``sys.argv[1:]`` when omitted).
    """
    parser = argparse.ArgumentParser(description="Serve the Ntropy webhook receiver (POST /ntropy/webhooks).")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port to listen on (default: 8081)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")
    args = parser.parse_args(argv)

    import uvicorn

    uvicorn.run(
        "ntropy_provider.webhooks.standalone:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
