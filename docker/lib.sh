# Shared by docker/build.sh, docker/push.sh and docker/registry.sh (sourced, not run).
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Every image genops builds; the ECR repository of KIND is genops/KIND.
KINDS=(component train-cuda serving mlflow)
DOCKER_EXPLICIT="${DOCKER:-}"
DOCKER="${DOCKER:-docker}"
# The air-gapped build's base image (docker/offline.sh base) and the pip and setuptools every
# image installs (the Dockerfiles pin the same; pip freeze leaves them out of the lock).
# shellcheck disable=SC2034  # used by the scripts that source this file
OFFLINE_BASE="${GENOPS_OFFLINE_BASE:-genops/python-bookworm:3.11-debootstrap}"
# shellcheck disable=SC2034
PIP_VERSION=26.3
# shellcheck disable=SC2034
SETUPTOOLS_VERSION=84.2.1

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

# The wheelhouse sets (docker/offline.sh wheels) an air-gapped build of KIND reads.
wheel_sets() {
  case "$1" in
    train-cuda) echo "common torch-cuda" ;;
    mlflow) echo "common" ;;
    *) echo "common torch-cpu" ;;
  esac
}

# Size budget of KIND's image, in MB (docker/build.sh reports each image against it and fails
# when one is over): the CPU images stay under 2 GB; the CUDA image carries ~4 GB of CUDA wheels
# (6.0 GB measured with the text workload's packages).
size_budget_mb() {
  case "$1" in
    component | serving) echo 2000 ;;
    train-cuda) echo 6500 ;;
    mlflow) echo 1200 ;;
    *) echo 0 ;;
  esac
}

# The Dockerfiles use BuildKit (RUN --mount). Docker >= 23 builds with it (buildx); an older
# CLI with DOCKER_BUILDKIT=1; a newer CLI without its buildx plugin cannot, so another docker
# on PATH (say Debian's 20.10 beside a static 2x CLI) is taken. DOCKER set: used as it is.
use_buildkit() {
  export DOCKER_BUILDKIT=1
  [[ -n "${DOCKER_EXPLICIT:-}" ]] && return
  "$DOCKER" buildx version >/dev/null 2>&1 && return
  local cli major
  while read -r cli; do
    major="$("$cli" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)" || continue
    if [[ "$major" =~ ^[0-9]+$ && "$major" -lt 23 ]] || "$cli" buildx version >/dev/null 2>&1; then
      DOCKER="$cli"
      return
    fi
  done < <(type -ap docker)
  die "no docker CLI here builds with BuildKit: install the buildx plugin (docker-buildx)"
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
