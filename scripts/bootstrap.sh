# Sourced by scripts/test and scripts/demo: installs what is missing on a fresh Debian machine
# where only python3 is present (Debian packages via apt-get when root), then the Python
# environment in .venv. Safe to run again: it only does what is not done yet.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
command -v notary-server >/dev/null 2>&1 || [ -x /usr/bin/notary-server ] || missing+=(notary)
command -v skopeo >/dev/null 2>&1 || [ -x /usr/bin/skopeo ] || missing+=(skopeo)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "bootstrap: installing ${missing[*]} with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
    else
        echo "bootstrap: missing ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv" >&2
    python3 -m venv .venv
fi
stamp=.venv/.imagelock-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "bootstrap: installing imagelock and its test tools into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    echo "$wanted" > "$stamp"
fi
