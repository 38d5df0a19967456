#!/usr/bin/env bash
# Print the image registry that compiled pipelines name: $GENOPS_IMAGE_REGISTRY when set, else
# the ECR registry (<account>.dkr.ecr.<region>.amazonaws.com) of a Terraform env's outputs.
#
#   docker/registry.sh ENV
#
# The Makefile's compile-cluster and submit targets export it as GENOPS_IMAGE_REGISTRY.
# Environment: GENOPS_TF_OUTPUTS (file with `terraform output -json`), PYTHON.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ -n "${GENOPS_IMAGE_REGISTRY:-}" ]]; then
  echo "$GENOPS_IMAGE_REGISTRY"
  exit 0
fi
[[ $# -ge 1 ]] || die "usage: docker/registry.sh ENV"
check_env "$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tf_outputs "$1" >"$work/outputs.json"
repo="$(tf_value "$work/outputs.json" ecr_repository_urls genops/component)" || exit 1
echo "${repo%%/*}"
