#!/usr/bin/env bash
# Build the genops images, tagged with the pipeline version (genops.version.pipeline_version(),
# package version + git commit: the tag compiled pipelines name):
#   genops/component:<version>    CPU image of every KFP step       docker/component.Dockerfile
#   genops/train-cuda:<version>   CUDA torch, for train (and tune)  docker/train-cuda.Dockerfile
#   genops/mlflow:<version>       MLflow tracking server            docker/mlflow.Dockerfile
#
#   docker/build.sh [KIND...]     default: every image
#
# Environment:
#   GENOPS_IMAGE_REGISTRY  also tag <registry>/genops/<kind>:<version>
#   GENOPS_PLATFORM        target platform (default linux/amd64, the EKS nodes' architecture)
#   GENOPS_BUILD_ARGS      extra `docker build` arguments, e.g.
#                          "--build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128"
#   DOCKER                 docker CLI (default docker); PYTHON: interpreter for the version
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }

kinds=("$@")
[[ ${#kinds[@]} -gt 0 ]] || kinds=("${KINDS[@]}")
check_kinds "${kinds[@]}"
need "$DOCKER"
load_version

# The tag names a commit: say so when the build context holds changes that commit does not.
dirty=false
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 &&
  [[ -n "$(git -C "$ROOT" status --porcelain -- constraints.txt pyproject.toml README.md src \
    components pipelines data docker ':!pipelines/dist')" ]]; then
  dirty=true
  echo "warning: uncommitted changes are built into images tagged $VERSION;" \
    "docker/push.sh refuses them (GENOPS_ALLOW_DIRTY=1 to push anyway)" >&2
fi

read -r -a extra <<<"${GENOPS_BUILD_ARGS:-}"
for kind in "${kinds[@]}"; do
  tags=(-t "genops/$kind:$VERSION")
  [[ -n "${GENOPS_IMAGE_REGISTRY:-}" ]] && tags+=(-t "$GENOPS_IMAGE_REGISTRY/genops/$kind:$VERSION")
  echo "==> genops/$kind:$VERSION"
  "$DOCKER" build \
    --platform "${GENOPS_PLATFORM:-linux/amd64}" \
    -f "$ROOT/docker/$kind.Dockerfile" \
    --build-arg "GENOPS_VERSION=$VERSION" \
    --build-arg "GENOPS_GIT_COMMIT=$COMMIT" \
    --label "io.genops.tree-dirty=$dirty" \
    "${tags[@]}" \
    ${extra[@]+"${extra[@]}"} \
    "$ROOT"
done
echo "built ${kinds[*]} at $VERSION"
