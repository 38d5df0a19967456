#!/usr/bin/env bash
# Build the genops images, tagged with the pipeline version (genops.version.pipeline_version(),
# package version + git commit: the tag compiled pipelines name):
#   genops/component:<version>    CPU image of every KFP step       docker/component.Dockerfile
#   genops/train-cuda:<version>   CUDA torch, for train (and tune)  docker/train-cuda.Dockerfile
#   genops/serving:<version>      the model server (genops serve)   docker/serving.Dockerfile
#   genops/mlflow:<version>       MLflow tracking server            docker/mlflow.Dockerfile
# Each is also tagged $GENOPS_IMAGE_REGISTRY/genops/<kind>:<version> (default localhost:5000,
# as genops.version.image() names it), so KFP's DockerRunner finds it without a pull.
#
#   docker/build.sh [KIND...]     default: every image
#
# Environment:
#   GENOPS_OFFLINE=1       air-gapped: base image from Debian packages and pip from the host's
#                          wheelhouse (docker/offline.sh prepares both first)
#   GENOPS_IMAGE_REGISTRY  the registry of the second tag (default localhost:5000)
#   GENOPS_PLATFORM        target platform (default linux/amd64, the EKS nodes' architecture)
#   GENOPS_BUILD_ARGS      extra `docker build` arguments, e.g.
#                          "--build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128"
#   GENOPS_SOURCE          the org.opencontainers.image.source label (default: git remote
#                          origin, without credentials)
#   DOCKER                 docker CLI (default: one on PATH that builds with BuildKit);
#                          PYTHON: interpreter for the version
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }

kinds=("$@")
[[ ${#kinds[@]} -gt 0 ]] || kinds=("${KINDS[@]}")
check_kinds "${kinds[@]}"
need "$DOCKER"
use_buildkit
load_version
registry="${GENOPS_IMAGE_REGISTRY:-localhost:5000}"

# The tag names a commit: say so when the build context holds changes that commit does not.
dirty=false
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 &&
  [[ -n "$(git -C "$ROOT" status --porcelain -- constraints.txt pyproject.toml README.md src \
    components pipelines data docker ':!pipelines/dist' ':!docker/wheelhouse')" ]]; then
  dirty=true
  echo "warning: uncommitted changes are built into images tagged $VERSION;" \
    "docker/push.sh refuses them (GENOPS_ALLOW_DIRTY=1 to push anyway)" >&2
fi
source_url="${GENOPS_SOURCE:-$(git -C "$ROOT" remote get-url origin 2>/dev/null |
  sed -E 's#://[^/@]*@#://#' || true)}"

offline=()
if [[ "${GENOPS_OFFLINE:-}" == 1 ]]; then
  "$DOCKER" image inspect "$OFFLINE_BASE" >/dev/null 2>&1 ||
    die "no base image $OFFLINE_BASE: run docker/offline.sh base first"
  offline=(--build-arg "PYTHON_IMAGE=$OFFLINE_BASE" --build-arg PIP_NO_INDEX=1)
fi

read -r -a extra <<<"${GENOPS_BUILD_ARGS:-}"
for kind in "${kinds[@]}"; do
  tags=(-t "genops/$kind:$VERSION" -t "$registry/genops/$kind:$VERSION")
  mode=()
  if [[ ${#offline[@]} -gt 0 ]]; then
    sets="$(wheel_sets "$kind")"
    for set in $sets; do
      [[ -f "$ROOT/docker/wheelhouse/$set/.lock-hash" ]] ||
        die "no wheel set '$set' in docker/wheelhouse: run docker/offline.sh wheels $set first"
    done
    mode=("${offline[@]}" --build-arg "PIP_FIND_LINKS=$(sed -E 's#(^| )# /wheels/#g; s/^ //' <<<"$sets")")
  fi
  echo "==> genops/$kind:$VERSION${mode[*]:+ (offline)}"
  started=$SECONDS
  "$DOCKER" build \
    --platform "${GENOPS_PLATFORM:-linux/amd64}" \
    -f "$ROOT/docker/$kind.Dockerfile" \
    --build-arg "GENOPS_VERSION=$VERSION" \
    --build-arg "GENOPS_GIT_COMMIT=$COMMIT" \
    --build-arg "GENOPS_SOURCE=${source_url:-unknown}" \
    --label "io.genops.tree-dirty=$dirty" \
    "${tags[@]}" \
    ${mode[@]+"${mode[@]}"} \
    ${extra[@]+"${extra[@]}"} \
    "$ROOT"
  echo "    genops/$kind:$VERSION built in $((SECONDS - started)) s"
done
echo "built ${kinds[*]} at $VERSION"

# Sizes against the budgets (MB: 10^6 bytes, as `docker images` counts).
over=()
printf '%-34s %9s %9s\n' image size budget
for kind in "${kinds[@]}"; do
  bytes="$("$DOCKER" image inspect -f '{{ .Size }}' "genops/$kind:$VERSION")"
  [[ "$bytes" =~ ^[0-9]+$ ]] || bytes=0
  mb=$((bytes / 1000000))
  budget="$(size_budget_mb "$kind")"
  printf '%-34s %6s MB %6s MB%s\n' "genops/$kind:${VERSION:0:18}" "$mb" "$budget" \
    "$([[ $mb -gt $budget ]] && echo "  OVER BUDGET")"
  [[ $mb -le $budget ]] || over+=("$kind")
done
[[ ${#over[@]} -eq 0 ]] || die "over the size budget: ${over[*]} (docker/lib.sh size_budget_mb)"
