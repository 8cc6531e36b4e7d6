#!/usr/bin/env bash
# Installs the Python test peers (moto_server, scim2-server) pinned in
# scripts/python-peers.txt into target/python-peers/venv. Idempotent: a stamp file holds the
# sha256 of the requirements file, so a second run is a no-op and a changed file reinstalls.
# Callers that may run concurrently (several test binaries) must hold a lock around this
# script; tests/e2e/src/peers.rs does.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$root/scripts/python-peers.txt"
dir="$root/target/python-peers"
venv="$dir/venv"
stamp="$dir/stamp"
python="${PYTHON:-python3}"

fail() {
    echo "python-peers: $*" >&2
    exit 1
}

command -v sha256sum >/dev/null || fail "sha256sum not found (coreutils)"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/moto_server" && -x "$venv/bin/scim2-server" ]]; then
    exit 0
fi

command -v "$python" >/dev/null ||
    fail "$python not found: install Python 3 with venv support (Debian: apt-get install python3 python3-venv) or set PYTHON=/path/to/python3"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
    fail "$("$python" --version 2>&1) is too old: the peers need Python >= 3.10"
"$python" -c 'import venv, ensurepip' 2>/dev/null ||
    fail "$python lacks the venv/ensurepip modules (Debian: apt-get install python3-venv)"

echo "python-peers: installing $(grep -Ev '^\s*(#|$)' "$requirements" | tr '\n' ' ')into $venv" >&2
rm -rf "$venv" "$stamp"
mkdir -p "$dir"
"$python" -m venv "$venv" || fail "python3 -m venv $venv failed (Debian: apt-get install python3-venv)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$requirements" || fail "pip install -r $requirements failed (is PyPI reachable?)"
for tool in moto_server scim2-server; do
    [[ -x "$venv/bin/$tool" ]] || fail "$tool missing from $venv/bin after install"
done
echo "$want" >"$stamp"
echo "python-peers: ready in $venv/bin" >&2
