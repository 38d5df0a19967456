# Shared by docker/build.sh, docker/push.sh and docker/registry.sh (sourced, not run).
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Every image genops builds; the ECR repository of KIND is genops/KIND.
KINDS=(component train-cuda mlflow)
DOCKER="${DOCKER:-docker}"

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required but not on PATH"; }

python_cmd() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"
  elif [[ -x "$ROOT/.venv/bin/python" ]]; then echo "$ROOT/.venv/bin/python"
  else echo python3
  fi
}

# The image tag and commit, from genops.version (the one place they are computed; stdlib only,
# so any Python 3.11 works without the venv). Sets VERSION and COMMIT.
load_version() {
  local py out
  py="$(python_cmd)"
  out="$(PYTHONPATH="$ROOT/src" "$py" -c \
    'from genops.version import git_commit, pipeline_version; print(pipeline_version()); print(git_commit())')" \
    || die "could not compute the version with $py"
  # shellcheck disable=SC2034  # used by the scripts that source this file
  VERSION="$(sed -n 1p <<<"$out")"
  # shellcheck disable=SC2034
  COMMIT="$(sed -n 2p <<<"$out")"
}

check_kinds() {
  local kind known
  for kind in "$@"; do
    for known in "${KINDS[@]}"; do [[ "$kind" == "$known" ]] && continue 2; done
    die "unknown image '$kind' (known: ${KINDS[*]})"
  done
}

check_env() {
  [[ "${1:-}" =~ ^(dev|prod)$ ]] || die "ENV must be dev or prod (got '${1:-}')"
}

# `terraform output -json` of terraform/envs/ENV, or the file $GENOPS_TF_OUTPUTS, on stdout.
tf_outputs() {
  if [[ -n "${GENOPS_TF_OUTPUTS:-}" ]]; then
    [[ -f "$GENOPS_TF_OUTPUTS" ]] || die "GENOPS_TF_OUTPUTS=$GENOPS_TF_OUTPUTS: no such file"
    cat "$GENOPS_TF_OUTPUTS"
  else
    need terraform
    terraform -chdir="$ROOT/terraform/envs/$1" output -json \
      || die "no Terraform outputs for env $1 (run \`make tf-apply ENV=$1\` first)"
  fi
}

# tf_value FILE NAME [KEY]: an output's value (a map's KEY when given), as text.
tf_value() {
  "$(python_cmd)" - "$@" <<'PY'
import json, sys
path, name = sys.argv[1], sys.argv[2]
outputs = json.load(open(path))
if name not in outputs:
    sys.exit(f"terraform outputs have no '{name}' (run `make tf-apply` first)")
value = outputs[name]
value = value["value"] if isinstance(value, dict) and "value" in value else value
if len(sys.argv) > 3:
    if sys.argv[3] not in value:
        sys.exit(f"terraform output '{name}' has no '{sys.argv[3]}' (keys: {sorted(value)})")
    value = value[sys.argv[3]]
print(value if isinstance(value, str) else json.dumps(value))
PY
}
