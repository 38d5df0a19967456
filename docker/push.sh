#!/usr/bin/env bash
# Push the images docker/build.sh built to the ECR repositories of a Terraform env:
#   aws ecr get-login-password | docker login; docker tag; docker push.
#
#   docker/push.sh ENV [KIND...]      ENV: dev or prod; default: every image
#
# The repositories come from the env's `terraform output -json` (ecr_repository_urls, region).
# ECR tags are immutable: an image built from uncommitted changes is refused, because its tag
# (the commit) could never be pushed again with the committed code.
#
# Environment:
#   GENOPS_TF_OUTPUTS   file with `terraform output -json` (default: terraform/envs/ENV state)
#   GENOPS_ALLOW_DIRTY  1: push images built from uncommitted changes anyway
#   DOCKER, AWS         CLIs (default docker, aws); PYTHON: interpreter for the version
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 1 && "$1" != "-h" && "$1" != "--help" ]] || {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 2; }
ENV="$1"; shift
check_env "$ENV"
kinds=("$@")
[[ ${#kinds[@]} -gt 0 ]] || kinds=("${KINDS[@]}")
check_kinds "${kinds[@]}"
AWS="${AWS:-aws}"
need "$DOCKER"
need "$AWS"
load_version

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tf_outputs "$ENV" >"$work/outputs.json"
region="$(tf_value "$work/outputs.json" region)" || exit 1

# Every image must exist locally (built at this version) and be clean, before anything is pushed.
declare -A url
for kind in "${kinds[@]}"; do
  url[$kind]="$(tf_value "$work/outputs.json" ecr_repository_urls "genops/$kind")" || exit 1
  dirty="$("$DOCKER" image inspect -f '{{ index .Config.Labels "io.genops.tree-dirty" }}' \
    "genops/$kind:$VERSION" 2>/dev/null)" \
    || die "no local image genops/$kind:$VERSION: run \`make images\` first"
  if [[ "$dirty" == "true" && "${GENOPS_ALLOW_DIRTY:-}" != "1" ]]; then
    die "genops/$kind:$VERSION was built from uncommitted changes; commit, rebuild" \
      "(make images) and push, or set GENOPS_ALLOW_DIRTY=1"
  fi
done

registry="${url[${kinds[0]}]%%/*}"
echo "==> docker login $registry"
"$AWS" ecr get-login-password --region "$region" |
  "$DOCKER" login --username AWS --password-stdin "$registry"

for kind in "${kinds[@]}"; do
  target="${url[$kind]}:$VERSION"
  echo "==> $target"
  "$DOCKER" tag "genops/$kind:$VERSION" "$target"
  "$DOCKER" push "$target"
done
echo "pushed ${kinds[*]} at $VERSION to $registry"
