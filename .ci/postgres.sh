# Sourced by .ci/run: makes DATABASE_URL point at a reachable PostgreSQL for the server's
# tests. Uses the one DATABASE_URL names if it answers; otherwise installs PostgreSQL from
# Debian's packages if needed, starts a throwaway cluster on 127.0.0.1:55432, and registers
# a trap that stops it when the calling shell exits.

pg_reachable() {
    command -v psql >/dev/null 2>&1 && psql "$1" -Atc 'SELECT 1' >/dev/null 2>&1
}

start_throwaway_postgres() {
    local bindir
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
        echo "installing PostgreSQL from Debian's packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq postgresql >/dev/null
        bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    PG_TMP=$(mktemp -d /tmp/workflows-pg.XXXXXX)
    local run_as=()
    if [ "$(id -u)" = 0 ]; then
        # PostgreSQL refuses to run as root.
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$PG_TMP"
        run_as=(runuser -u postgres --)
    fi
    "${run_as[@]}" "$bindir/initdb" -D "$PG_TMP/data" -U postgres --auth=trust -E UTF8 >/dev/null
    "${run_as[@]}" "$bindir/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/log" -w \
        -o "-p 55432 -k $PG_TMP -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null
    PG_STOP=("${run_as[@]}" "$bindir/pg_ctl" -D "$PG_TMP/data" -m fast stop)
    trap '"${PG_STOP[@]}" >/dev/null 2>&1 || true; rm -rf "$PG_TMP"' EXIT
    "$bindir/createdb" -h 127.0.0.1 -p 55432 -U postgres workflows_test
    export DATABASE_URL=postgres://postgres@127.0.0.1:55432/workflows_test
    echo "PostgreSQL started for the tests at $DATABASE_URL"
}

PG_STOP=(true)
if [ -n "${DATABASE_URL:-}" ] && pg_reachable "$DATABASE_URL"; then
    echo "using the PostgreSQL at DATABASE_URL"
else
    start_throwaway_postgres
fi
