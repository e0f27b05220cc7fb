#!/usr/bin/env bash
# A throwaway PostgreSQL server on localhost for the results store's tests (cargo feature
# `postgres`): installs Debian's postgresql package when its binaries are missing, creates a
# cluster (in target/postgres; as root, in a fresh folder under /tmp owned by the `postgres`
# user, which may not be able to enter the checkout), starts it on port 54329 and prints the
# environment:
#   eval "$(scripts/setup-postgres.sh start)"    # exports ONEBENCH_TEST_POSTGRES
#   scripts/setup-postgres.sh stop               # stops it and removes the cluster
# Trust authentication on localhost only: a test server, never a store to keep.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${ONEBENCH_POSTGRES_PORT:-54329}
# Names the folder of the running cluster, for `stop`.
STATE=$PWD/target/postgres.dir

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
    stop
    if [ "$(id -u)" -eq 0 ]; then
        DATA=$(mktemp -d /tmp/onebench-postgres.XXXXXX)
        chown postgres "$DATA"
    else
        DATA=$PWD/target/postgres
        rm -rf "$DATA"
        mkdir -p "$DATA"
    fi
    mkdir -p "$(dirname "$STATE")"
    echo "$DATA" >"$STATE"
    as_server_user "$bin/initdb" -D "$DATA/cluster" -A trust -U postgres >"$DATA/initdb.log" 2>&1 ||
        { cat "$DATA/initdb.log" >&2; exit 1; }
    as_server_user "$bin/pg_ctl" -D "$DATA/cluster" -l "$DATA/server.log" -w \
        -o "-p $PORT -k $DATA -c listen_addresses=localhost" start >&2
    "$bin/psql" -q -h localhost -p "$PORT" -U postgres -c "CREATE DATABASE onebench" >&2
    echo "export ONEBENCH_TEST_POSTGRES=postgres://postgres@localhost:$PORT/onebench"
}

# Stops the cluster `start` made (if any) and removes it.
stop() {
    [ -f "$STATE" ] || return 0
    local data bin
    data=$(cat "$STATE")
    bin=$(bin_dir)
    if [ -n "$bin" ] && [ -f "$data/cluster/postmaster.pid" ]; then
        as_server_user "$bin/pg_ctl" -D "$data/cluster" -m fast -w stop >&2 || true
    fi
    rm -rf "$data" "$STATE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
