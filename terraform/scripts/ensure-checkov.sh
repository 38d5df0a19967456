#!/usr/bin/env bash
# Create .venv-checkov at the repo root with the pinned checkov from
# terraform/checkov-requirements.txt. Idempotent: a no-op when the venv already
# has the pinned version. checkov lives in its own venv because its
# dependency pins clash with the project's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv-checkov"
REQS="$ROOT/terraform/checkov-requirements.txt"
PYTHON="${PYTHON:-python3}"

want="$(sed -n 's/^checkov==//p' "$REQS")"
if [[ -x "$VENV/bin/checkov" ]] && [[ "$("$VENV/bin/python" -m pip show checkov 2>/dev/null | sed -n 's/^Version: //p')" == "$want" ]]; then
  exit 0
fi

echo "ensure-checkov: installing checkov==$want into $VENV" >&2
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
"$VENV/bin/checkov" --version >/dev/null
