# Sourced by .ci/run: makes DATABASE_URL point at a reachable PostgreSQL for the server's
# tests. Uses the one DATABASE_URL names if it answers; otherwise installs PostgreSQL from
# Debian's packages if needed, starts a throwaway cluster on 127.0.0.1:15432 with TLS on (a
# certificate for 127.0.0.1 signed by a throwaway authority, whose certificate
# DATABASE_CA_FILE names for the TLS test), and registers a trap that stops it when the
# calling shell exits.

# Writes ca.crt, server.crt and server.key into $1: an authority made for the tests and a
# certificate it signs for 127.0.0.1 and localhost.
make_test_certificates() {
    local dir=$1
    if ! command -v openssl >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq openssl >/dev/null
    fi
    openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=workflows test authority" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' \
        > "$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 7 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
    chmod 600 "$dir/server.key"
}

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
    make_test_certificates "$PG_TMP"
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$PG_TMP"/server.key "$PG_TMP"/server.crt
    fi
    "${run_as[@]}" "$bindir/initdb" -D "$PG_TMP/data" -U postgres --auth=trust -E UTF8 >/dev/null
    # A port below Linux's ephemeral range (32768-60999), so that no client connection open
    # on the machine at that moment can hold it.
    local port=15432
    # Set before the start, so that a cluster that fails to start leaves nothing behind.
    PG_STOP=("${run_as[@]}" "$bindir/pg_ctl" -D "$PG_TMP/data" -m fast stop)
    trap '"${PG_STOP[@]}" >/dev/null 2>&1 || true; rm -rf "$PG_TMP"' EXIT
    if ! "${run_as[@]}" "$bindir/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/log" -w \
        -o "-p $port -k $PG_TMP -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off \
            -c ssl=on -c ssl_cert_file=$PG_TMP/server.crt -c ssl_key_file=$PG_TMP/server.key" \
        start >/dev/null; then
        echo "PostgreSQL did not start; its log:" >&2
        cat "$PG_TMP/log" >&2
        return 1
    fi
    "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres workflows_test
    export DATABASE_URL=postgres://postgres@127.0.0.1:$port/workflows_test
    export DATABASE_CA_FILE=$PG_TMP/ca.crt
    echo "PostgreSQL started for the tests at $DATABASE_URL, with TLS (DATABASE_CA_FILE=$DATABASE_CA_FILE)"
}

PG_STOP=(true)
if [ -n "${DATABASE_URL:-}" ] && pg_reachable "$DATABASE_URL"; then
    echo "using the PostgreSQL at DATABASE_URL"
else
    start_throwaway_postgres
fi
