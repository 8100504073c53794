#!/bin/bash
# The official image's entrypoint, reduced to what docker-compose.yml relies on: `bash ...` and `python ...`
# run as given, anything else is an `airflow` subcommand.
set -euo pipefail
case "${1:-}" in
    bash | python | python3) exec "$@" ;;
    *) exec airflow "$@" ;;
esac
