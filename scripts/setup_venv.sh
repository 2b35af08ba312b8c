#!/usr/bin/env bash
# Create the project's virtual environment with Python 3.10 (rasa 3.6 needs
# >=3.8,<3.11) and install the pinned dependencies of requirements.txt.
#
# The interpreter is, in order: $PYTHON310, `python3.10` on PATH (if it runs),
# then pyenv's 3.10 versions.
# Usage: scripts/setup_venv.sh [VENV_DIR] [REQUIREMENTS_FILE]
set -euo pipefail
venv="${1:-.venv}"
requirements="${2:-requirements.txt}"

runs_310() { [ -n "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; }

find_python310() {
  local candidate
  for candidate in "${PYTHON310:-}" "$(command -v python3.10 || true)"; do
    if runs_310 "$candidate"; then echo "$candidate"; return 0; fi
  done
  local root
  root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
  for candidate in "$root"/versions/3.10*/bin/python3.10; do
    if runs_310 "$candidate"; then echo "$candidate"; return 0; fi
  done
  return 1
}

if [ ! -x "$venv/bin/python" ] || ! runs_310 "$venv/bin/python"; then
  if ! python310="$(find_python310)"; then
    echo "error: Python 3.10 not found. Install it (e.g. 'pyenv install 3.10.13') or set PYTHON310=/path/to/python3.10." >&2
    exit 1
  fi
  echo "Creating $venv with $python310"
  rm -rf "$venv"
  "$python310" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip==24.0
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
# Packages installed without their declared dependencies (requirements-nodeps.txt explains why).
nodeps="$(dirname "$requirements")/requirements-nodeps.txt"
if [ -f "$nodeps" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$nodeps"
fi
