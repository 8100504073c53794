#!/bin/bash
# First start: create the cluster, the user and the database named by the official image's variables.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:?}" > "$pwfile"
    initdb --username="${POSTGRES_USER:?}" --pwfile="$pwfile" --auth-host=scram-sha-256 --auth-local=trust "$PGDATA"
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -w start -o "-c listen_addresses=''"
    if [ "${POSTGRES_DB:-$POSTGRES_USER}" != "$POSTGRES_USER" ] && [ "${POSTGRES_DB:-postgres}" != postgres ]; then
        createdb --username="$POSTGRES_USER" "$POSTGRES_DB"
    elif [ "${POSTGRES_DB:-$POSTGRES_USER}" = "$POSTGRES_USER" ]; then
        createdb --username="$POSTGRES_USER" "$POSTGRES_USER" 2>/dev/null || true
    fi
    pg_ctl -D "$PGDATA" -w stop
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/run/postgresql
