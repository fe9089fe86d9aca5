#!/usr/bin/env bash
# Runs bench/python/reference_server.py (the reference server, llama-agents-server 0.8.0, with
# the number workflow) in a virtualenv of its own with the pinned versions.
#   SERVER_BENCH_VENV  where the virtualenv lives (default /tmp/wfserver-venv); made if missing
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${SERVER_BENCH_VENV:-/tmp/wfserver-venv}"
pinned="0.8.0"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-agents-server') != '$pinned')" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/server-requirements.txt" >&2
fi

exec "$venv/bin/python" "$here/reference_server.py" "$@"
