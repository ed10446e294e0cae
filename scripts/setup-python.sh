#!/usr/bin/env bash
# Creates .venv at the repository root and installs Gunicorn and Flask into it.
# Re-running it is cheap: each step runs only when its result is missing.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.venv"
requirements="$repo_root/scripts/requirements.txt"

if ! command -v python3 >/dev/null 2>&1; then
    echo "setup-python: python3 not found; install Python 3.9 or later" >&2
    exit 1
fi

if [[ -x "$venv/bin/python" ]]; then
    echo "setup-python: using existing virtual environment $venv"
else
    echo "setup-python: creating virtual environment $venv"
    python3 -m venv "$venv"
fi

if "$venv/bin/python" -c 'import gunicorn, flask, flask_sock' >/dev/null 2>&1; then
    echo "setup-python: gunicorn, flask and flask-sock already installed"
else
    echo "setup-python: installing packages from $requirements"
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$requirements"
fi

"$venv/bin/python" -c 'import importlib.metadata as m; print("setup-python: gunicorn", m.version("gunicorn") + ", flask", m.version("flask"))'
