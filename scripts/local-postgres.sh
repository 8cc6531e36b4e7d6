#!/usr/bin/env bash
# A PostgreSQL 15 for a local trial of several workers: a cluster in .local/postgres of
# this checkout, on 127.0.0.1 only, with a `portcullis` database, run as an unprivileged
# user (as root: the `postgres` system user). Prints the [state] url to use.
#   scripts/local-postgres.sh          start (creating the cluster on first use)
#   scripts/local-postgres.sh stop     stop it
set -euo pipefail
cd "$(dirname "$0")/.."

port="${PORTCULLIS_PG_PORT:-54329}"
data="$PWD/.local/postgres"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$bin" ] && command -v initdb >/dev/null 2>&1; then
    bin="$(dirname "$(command -v initdb)")"
fi
if [ -z "$bin" ]; then
    echo "PostgreSQL is not installed: apt-get install -y postgresql" >&2
    exit 1
fi

as_user=()
if [ "$(id -u)" = 0 ]; then
    as_user=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

if [ "${1:-start}" = stop ]; then
    "${as_user[@]}" "$bin/pg_ctl" -D "$data" -m fast stop
    exit 0
fi

if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$data"
    "${as_user[@]}" "$bin/initdb" -D "$data" -U portcullis -A trust --no-instructions >/dev/null
fi
"${as_user[@]}" "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data" start >/dev/null
"$bin/psql" -h 127.0.0.1 -p "$port" -U portcullis -d postgres -Atqc \
    "SELECT 1 FROM pg_database WHERE datname = 'portcullis'" | grep -q 1 ||
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U portcullis portcullis
echo "postgres://portcullis@127.0.0.1:$port/portcullis"
