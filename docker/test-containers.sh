#!/usr/bin/env bash
# `make test-containers`: the images built and run for real, kept out of the default `make test`.
#   1. a Docker engine: started (dockerd, as root) when it is installed but not running
#   2. the air-gapped inputs: debootstrap base image and wheelhouse (docker/offline.sh)
#   3. every image, built offline and tagged with the pipeline version (docker/build.sh)
#   4. tests/docker/test_containers.py: each image's user, labels, size and contents; the fast
#      tabular config through KFP's DockerRunner; the model server image smoke-tested against
#      the model that run registered; the MLflow image in the production shape
# Prints how long each part took.
#
# Environment: GENOPS_OFFLINE (default 1; 0 builds from the registry and the package index),
#   PYTEST_ARGS (extra pytest arguments, e.g. "-k serving"), PYTHON (default .venv/bin/python),
#   GENOPS_REFERENCE_RESULT (a subprocess run's JSON from tests/docker/run_pipeline.py: the
#   containerised run must match its metrics).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }

PY="${PYTHON:-$ROOT/.venv/bin/python}"
declare -a parts=()
timed() {
  local name="$1" started=$SECONDS
  shift
  echo "==> $name"
  "$@"
  parts+=("$(printf '%-30s %5d s' "$name" $((SECONDS - started)))")
}

# shellcheck disable=SC2329  # called through timed
ensure_engine() {
  if docker info >/dev/null 2>&1; then return; fi
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "No Docker engine here. Install one (Debian/Ubuntu, as root):" >&2
    echo "  apt-get update && apt-get install -y docker.io debootstrap" >&2
    echo "then run this again (it starts dockerd), or start it yourself: dockerd &" >&2
    exit 1
  fi
  [[ "$(id -u)" == 0 ]] || die "dockerd is installed but not running; start it as root (dockerd &)"
  local log="${GENOPS_HOME:-$ROOT/.genops}/dockerd.log"
  mkdir -p "$(dirname "$log")"
  echo "starting dockerd (log $log)"
  nohup dockerd >"$log" 2>&1 &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  die "dockerd did not answer within 60 s; see $log"
}

# One version for the whole run: a commit landing meanwhile must not rename the images halfway.
GENOPS_GIT_COMMIT="${GENOPS_GIT_COMMIT:-$(git -C "$ROOT" rev-parse --short=12 HEAD)}"
export GENOPS_GIT_COMMIT
total=$SECONDS
timed "docker engine" ensure_engine
if [[ "${GENOPS_OFFLINE:-1}" == 1 ]]; then
  timed "offline base + wheelhouse" "$ROOT/docker/offline.sh" for
fi
for kind in "${KINDS[@]}"; do
  timed "build $kind" env GENOPS_OFFLINE="${GENOPS_OFFLINE:-1}" "$ROOT/docker/build.sh" "$kind"
done
read -r -a pytest_args <<<"${PYTEST_ARGS:-}"
status=0
timed "container tests" env GENOPS_TEST_CONTAINERS=1 "$PY" -m pytest -p no:cacheprovider \
  "$ROOT/tests/docker/test_containers.py" -v -s --durations=0 \
  ${pytest_args[@]+"${pytest_args[@]}"} || status=$?
echo
echo "make test-containers: $((SECONDS - total)) s"
printf '  %s\n' "${parts[@]}"
exit "$status"
