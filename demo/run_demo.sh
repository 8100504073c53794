#!/usr/bin/env bash
# The whole pipeline in one command, no Ntropy account needed:
#   virtualenv (if missing) -> local Ntropy emulator on loopback -> sample transactions for one day ->
#   `airflow dags test ntropy_nightly_enrichment <day>` on an embedded SQLite Airflow home (airflow_home/)
#   -> a short summary. Everything it starts is stopped on exit.
#
# Settings (environment):
#   DEMO_DATE        the day to enrich (default: yesterday, UTC)
#   DEMO_ROWS        rows of sample data (default: 1000)
#   NTROPY_API_KEY   set it to use the real API instead of the emulator (NTROPY_API_HOST to change the
#                    host, e.g. https://api.eu.ntropy.com); sample data is then sent to Ntropy and billed.
#   DEMO_AIRFLOW_HOME, DEMO_DATA_ROOT   where the Airflow home and the data go (default: airflow_home/
#                    and demo_data/ in the repo, both git-ignored)
#   DEMO_SKIP_VENV=1 do not run `make venv` (the tests run the demo from the venv they already use)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
DEMO_DATE="${DEMO_DATE:-$(date -u -d yesterday +%F 2>/dev/null || python3 -c 'import datetime as d; print(d.date.today() - d.timedelta(days=1))')}"
DEMO_ROWS="${DEMO_ROWS:-1000}"
PY="$REPO/.venv/bin/python"
STARTED=$(date +%s)

if [[ "${DEMO_SKIP_VENV:-0}" != "1" ]]; then
  make --no-print-directory venv
fi

export PATH="$REPO/.venv/bin:$PATH"
export AIRFLOW_HOME="${DEMO_AIRFLOW_HOME:-$REPO/airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
export NTROPY_DATA_ROOT="${DEMO_DATA_ROOT:-$REPO/demo_data}"
mkdir -p "$AIRFLOW_HOME" "$NTROPY_DATA_ROOT/logs"

EMULATOR_PID=""
cleanup() {
  if [[ -n "$EMULATOR_PID" ]] && kill -0 "$EMULATOR_PID" 2>/dev/null; then
    kill "$EMULATOR_PID" 2>/dev/null || true
    # Bounded: 10 s for a clean exit, then SIGKILL, so the demo never hangs on its way out.
    for _ in $(seq 50); do kill -0 "$EMULATOR_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$EMULATOR_PID" 2>/dev/null || true
    wait "$EMULATOR_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM

if [[ -n "${NTROPY_API_KEY:-}" ]]; then
  echo "Using the real Ntropy API (${NTROPY_API_HOST:-https://api.ntropy.com})"
  export AIRFLOW_CONN_NTROPY_DEFAULT
  AIRFLOW_CONN_NTROPY_DEFAULT="$("$PY" -c 'import json, os; print(json.dumps({"conn_type": "ntropy", "host": os.environ.get("NTROPY_API_HOST", "https://api.ntropy.com"), "password": os.environ["NTROPY_API_KEY"]}))')"
else
  PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$PY" -m ntropy_provider.emulator --host 127.0.0.1 --port "$PORT" --api-key demo-key \
    --items-per-second 5000 --log-level warning >"$NTROPY_DATA_ROOT/logs/emulator.log" 2>&1 &
  EMULATOR_PID=$!
  "$PY" - "$PORT" <<'EOF'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/_emulator/stats"
deadline = time.monotonic() + 30
while True:
    try:
        urllib.request.urlopen(url, timeout=2).read()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"the emulator did not answer at {url} within 30 s (see the data root's logs/emulator.log)")
        time.sleep(0.2)
EOF
  echo "Local Ntropy emulator on http://127.0.0.1:$PORT (pid $EMULATOR_PID)"
  export AIRFLOW_CONN_NTROPY_DEFAULT="{\"conn_type\": \"ntropy\", \"host\": \"http://127.0.0.1:$PORT\", \"password\": \"demo-key\"}"
fi

echo "Writing $DEMO_ROWS sample transactions for $DEMO_DATE into $NTROPY_DATA_ROOT/landing"
"$PY" -m ntropy_provider.sample_data --out "$NTROPY_DATA_ROOT/landing" --start "$DEMO_DATE" \
  --rows-per-day "$DEMO_ROWS" >/dev/null

echo "Preparing the Airflow home ($AIRFLOW_HOME)"
airflow db migrate >"$NTROPY_DATA_ROOT/logs/db_migrate.log" 2>&1 || { tail -20 "$NTROPY_DATA_ROOT/logs/db_migrate.log"; exit 1; }

LOG="$NTROPY_DATA_ROOT/logs/dags_test_$DEMO_DATE.log"
echo "Running: airflow dags test ntropy_nightly_enrichment $DEMO_DATE  (log: $LOG)"
if ! airflow dags test ntropy_nightly_enrichment "$DEMO_DATE" >"$LOG" 2>&1 || ! grep -q "state=success" "$LOG"; then
  echo "The run failed; the end of its log:" >&2
  tail -40 "$LOG" >&2
  exit 1
fi

echo
"$PY" "$REPO/demo/summary.py" --data-root "$NTROPY_DATA_ROOT" --date "$DEMO_DATE"
echo
echo "Done in $(( $(date +%s) - STARTED )) s. Airflow home: $AIRFLOW_HOME; data: $NTROPY_DATA_ROOT"
