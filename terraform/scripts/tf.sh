#!/usr/bin/env bash
# Terraform entry point used by the Makefile.
#
#   terraform/scripts/tf.sh plan     ENV   init (S3 backend) + plan, saved to envs/ENV/genops.tfplan
#   terraform/scripts/tf.sh apply    ENV   init (S3 backend) + apply (asks for confirmation)
#   terraform/scripts/tf.sh destroy  ENV   init (S3 backend) + destroy (asks for confirmation)
#   terraform/scripts/tf.sh output   ENV   terraform output of the env
#   terraform/scripts/tf.sh validate ENV   offline: init -backend=false + validate
#   terraform/scripts/tf.sh test     ENV   offline: validate + terraform test (mocked AWS)
#   terraform/scripts/tf.sh offline-test   fmt -check + validate + terraform test for
#                                          envs/dev, envs/prod and the module tests
# ENV is dev or prod. plan/apply/destroy need AWS credentials and
# envs/ENV/backend.hcl (copy backend.hcl.example). The offline commands run in
# a temporary copy of terraform/, so no .terraform/ or lock file lands in the
# repo, and use a local provider mirror when one is found (GENOPS_TF_PLUGIN_DIR,
# or terraform's implied local mirror directories), else the registry.
set -euo pipefail

TF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
  exit 2
}

die() { echo "tf.sh: $*" >&2; exit 1; }

command -v terraform >/dev/null 2>&1 || die "terraform is not on PATH (need >= 1.10)"

check_env() {
  [[ "${1:-}" =~ ^(dev|prod)$ ]] || die "ENV must be dev or prod (got '${1:-}')"
}

# Directory holding registry.terraform.io/hashicorp/aws/... for -plugin-dir.
find_plugin_dir() {
  if [[ -n "${GENOPS_TF_PLUGIN_DIR:-}" ]]; then
    [[ -d "$GENOPS_TF_PLUGIN_DIR/registry.terraform.io" ]] ||
      die "GENOPS_TF_PLUGIN_DIR=$GENOPS_TF_PLUGIN_DIR has no registry.terraform.io/ inside"
    echo "$GENOPS_TF_PLUGIN_DIR"
    return
  fi
  local d
  for d in "$HOME/.terraform.d/plugins" "$HOME/.local/share/terraform/plugins" \
    /usr/local/share/terraform/plugins /usr/share/terraform/plugins; do
    if [[ -d "$d/registry.terraform.io/hashicorp/aws" ]]; then
      echo "$d"
      return
    fi
  done
  d="$(find /opt /usr/local/share -maxdepth 3 -type d -name registry.terraform.io 2>/dev/null | head -n 1 || true)"
  if [[ -n "$d" && -d "$d/hashicorp/aws" ]]; then
    dirname "$d"
  fi
}

# Copy terraform/ to a temp dir, without local state, caches, lock files or
# tfvars (tests check the defaults).
scratch_copy() {
  local dest
  dest="$(mktemp -d "${TMPDIR:-/tmp}/genops-tf.XXXXXX")"
  (cd "$TF_DIR" && tar --exclude='.terraform' --exclude='.terraform.lock.hcl' \
    --exclude='*.tfstate*' --exclude='*.tfplan' --exclude='backend.hcl' \
    --exclude='*.tfvars' --exclude='*.tfvars.json' -cf - .) |
    (cd "$dest" && tar -xf -)
  echo "$dest"
}

offline_init() {  # offline_init DIR
  local plugin_dir
  plugin_dir="$(find_plugin_dir)"
  local args=(-chdir="$1" init -backend=false -input=false -no-color)
  if [[ -n "$plugin_dir" ]]; then
    args+=(-plugin-dir="$plugin_dir")
  fi
  if [[ "$(basename "$1")" == "tests" ]]; then
    args+=(-test-directory=.)
  fi
  terraform "${args[@]}" >/dev/null
}

offline_root() {  # offline_root COPY RELPATH [test]
  local dir="$1/$2"
  echo "==> $2"
  offline_init "$dir"
  if [[ "$(basename "$dir")" != "tests" ]]; then
    terraform -chdir="$dir" validate -no-color
  fi
  if [[ "${3:-}" == "test" ]]; then
    if [[ "$(basename "$dir")" == "tests" ]]; then
      terraform -chdir="$dir" test -no-color -test-directory=.
    else
      terraform -chdir="$dir" test -no-color
    fi
  fi
}

backend_init() {  # backend_init ENV
  local dir="$TF_DIR/envs/$1"
  [[ -f "$dir/backend.hcl" ]] ||
    die "missing $dir/backend.hcl: copy backend.hcl.example and fill in the state bucket"
  terraform -chdir="$dir" init -input=false -backend-config=backend.hcl
}

[[ $# -ge 1 ]] || usage
CMD="$1"
shift

case "$CMD" in
  plan)
    check_env "${1:-}"
    backend_init "$1"
    terraform -chdir="$TF_DIR/envs/$1" plan -input=false -out=genops.tfplan
    ;;
  apply)
    check_env "${1:-}"
    backend_init "$1"
    terraform -chdir="$TF_DIR/envs/$1" apply -input=false
    ;;
  destroy)
    check_env "${1:-}"
    backend_init "$1"
    terraform -chdir="$TF_DIR/envs/$1" destroy -input=false
    ;;
  output)
    check_env "${1:-}"
    terraform -chdir="$TF_DIR/envs/$1" output
    ;;
  validate | test)
    check_env "${1:-}"
    copy="$(scratch_copy)"
    trap 'rm -rf "$copy"' EXIT
    offline_root "$copy" "envs/$1" "$([[ "$CMD" == test ]] && echo test)"
    ;;
  offline-test)
    terraform -chdir="$TF_DIR" fmt -check -recursive -diff
    copy="$(scratch_copy)"
    trap 'rm -rf "$copy"' EXIT
    for root in envs/dev envs/prod tests; do
      offline_root "$copy" "$root" test
    done
    ;;
  *)
    usage
    ;;
esac
