#!/usr/bin/env bash
# A throwaway PostgreSQL server on localhost for the results store's tests (cargo feature
# `postgres`): installs Debian's postgresql package when its binaries are missing, creates a
# cluster in target/postgres (git-ignored), starts it on port 54329 and prints the environment:
#   eval "$(scripts/setup-postgres.sh start)"    # exports ONEBENCH_TEST_POSTGRES
#   scripts/setup-postgres.sh stop               # stops it and removes the cluster
# Trust authentication on localhost only: a test server, never a store to keep.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${ONEBENCH_POSTGRES_PORT:-54329}
DATA=$PWD/target/postgres

sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo

bin_dir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

# initdb and the server refuse to run as root: as root, they run as the `postgres` user that
# Debian's package creates.
as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    if [ -z "$(bin_dir)" ]; then
        echo "installing Debian's postgresql" >&2
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
    fi
    local bin
    bin=$(bin_dir)
    stop_server "$bin"
    rm -rf "$DATA"
    mkdir -p "$DATA"
    [ "$(id -u)" -eq 0 ] && chown postgres "$DATA"
    as_server_user "$bin/initdb" -D "$DATA/cluster" -A trust -U postgres >"$DATA/initdb.log" 2>&1 ||
        { cat "$DATA/initdb.log" >&2; exit 1; }
    as_server_user "$bin/pg_ctl" -D "$DATA/cluster" -l "$DATA/server.log" -w \
        -o "-p $PORT -k $DATA -c listen_addresses=localhost" start >&2
    "$bin/psql" -q -h localhost -p "$PORT" -U postgres -c "CREATE DATABASE onebench" >&2
    echo "export ONEBENCH_TEST_POSTGRES=postgres://postgres@localhost:$PORT/onebench"
}

stop_server() {
    local bin=$1
    if [ -f "$DATA/cluster/postmaster.pid" ]; then
        as_server_user "$bin/pg_ctl" -D "$DATA/cluster" -m fast -w stop >&2 || true
    fi
}

case "${1:-}" in
    start) start ;;
    stop)
        bin=$(bin_dir)
        [ -n "$bin" ] && stop_server "$bin"
        rm -rf "$DATA"
        ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
