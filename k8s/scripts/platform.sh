#!/usr/bin/env bash
# Install the genops cluster platform on the EKS cluster of a terraform env:
# cert-manager, External Secrets Operator, Kubeflow Pipelines 2.17 (standalone, its
# databases on RDS and its object store on S3), KServe (RawDeployment), Cluster Autoscaler,
# the NVIDIA device plugin when the GPU AMI needs it, and the genops namespaces, config,
# credentials (synced from Secrets Manager), RBAC, NetworkPolicies and database users.
#
#   k8s/scripts/platform.sh render ENV OUT_DIR   offline: terraform outputs -> manifests
#   k8s/scripts/platform.sh apply  ENV           install (needs the cluster)
#
# Environment:
#   GENOPS_TF_OUTPUTS   file with `terraform output -json`; default: read from
#                       the state of terraform/envs/ENV
#   GENOPS_IMAGES_LOCK  image lock; default k8s/platform/images/ENV.lock.json, written by
#                       k8s/scripts/mirror_images.sh ENV (`render` works without one)
#   KUBE_CONTEXT        kubectl context to use; default: `aws eks update-kubeconfig` for the
#                       env's cluster
#
# No password passes through this script: credentials stay in Secrets Manager and External
# Secrets syncs them (and their rotations) into the cluster.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PLATFORM="$ROOT/k8s/platform"
RENDER="$ROOT/k8s/scripts/render_platform.py"
STAGE="$ROOT/k8s/scripts/stage_upstream.py"

# Scratch directory (terraform outputs, rendered and staged manifests); removed on exit.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/genops-platform.XXXXXX")"
chmod 700 "$WORK"
trap 'rm -rf "$WORK"' EXIT

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
  exit 2
}

die() { echo "platform.sh: $*" >&2; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required but not on PATH"; }

check_env() {
  [[ "${1:-}" =~ ^(dev|prod)$ ]] || die "ENV must be dev or prod (got '${1:-}')"
}

PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || PY=python3

# Writes terraform outputs (JSON) to $1.
outputs_json() {
  local target="$1"
  if [[ -n "${GENOPS_TF_OUTPUTS:-}" ]]; then
    cp "$GENOPS_TF_OUTPUTS" "$target"
  else
    need terraform
    terraform -chdir="$ROOT/terraform/envs/$ENV" output -json >"$target"
  fi
}

output_value() {  # output_value FILE NAME
  "$PY" -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; v=v["value"] if isinstance(v,dict) and "value" in v else v; print(v if isinstance(v,str) else json.dumps(v))' "$1" "$2"
}

images_lock() {
  echo "${GENOPS_IMAGES_LOCK:-$PLATFORM/images/$ENV.lock.json}"
}

cmd_render() {
  local out="${1:-}"
  [[ -n "$out" ]] || die "usage: platform.sh render ENV OUT_DIR"
  outputs_json "$WORK/outputs.json"
  local lock; lock="$(images_lock)"
  if [[ -f "$lock" ]]; then
    "$PY" "$RENDER" --outputs "$WORK/outputs.json" --out "$out" --images-lock "$lock"
  else
    "$PY" "$RENDER" --outputs "$WORK/outputs.json" --out "$out" --allow-unpinned-images
  fi
}

cmd_apply() {
  need kubectl
  local work="$WORK"
  outputs_json "$work/outputs.json"
  local lock; lock="$(images_lock)"
  [[ -f "$lock" ]] || die "no image lock $lock: run k8s/scripts/mirror_images.sh $ENV first"
  grep -q '^UNLOCKED ' "$PLATFORM/upstream/checksums.sha256" &&
    die "checksums.sha256 has UNLOCKED entries: review those files, then run k8s/scripts/lock_upstream.sh"

  local region cluster pipeline_ns system_ns
  region="$(output_value "$work/outputs.json" region)"
  cluster="$(output_value "$work/outputs.json" cluster_name)"

  local ctx="${KUBE_CONTEXT:-}"
  if [[ -z "$ctx" ]]; then
    need aws
    aws eks update-kubeconfig --region "$region" --name "$cluster" --alias "$cluster" >/dev/null
    ctx="$cluster"
  fi
  local k=(kubectl --context "$ctx")
  # One field manager for everything this script applies, server-side, and it owns the
  # fields it sets: re-applying after an upstream or a manual change never conflicts.
  local apply=("${k[@]}" apply --server-side --field-manager=genops-platform --force-conflicts)

  "$PY" "$RENDER" --outputs "$work/outputs.json" --out "$work/rendered" --images-lock "$lock" >/dev/null
  "$PY" "$STAGE" --lock "$lock" --out "$work/upstream" >/dev/null
  pipeline_ns="$(output_value "$work/outputs.json" service_accounts |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["pipeline_runner"].split("/")[0])')"
  system_ns=genops-system

  echo "==> namespaces"
  "${apply[@]}" -f "$work/rendered/00-namespaces.yaml"

  echo "==> cert-manager"
  "${apply[@]}" -k "$work/upstream/cert-manager"
  "${k[@]}" -n cert-manager rollout status deploy/cert-manager-webhook --timeout=5m

  echo "==> External Secrets Operator"
  "${apply[@]}" -k "$work/upstream/external-secrets"
  "${k[@]}" -n external-secrets rollout status deploy/external-secrets-webhook --timeout=5m

  echo "==> Kubeflow Pipelines CRDs and cluster-scoped resources"
  "${apply[@]}" -k "$work/upstream/kfp-cluster-scoped"
  "${k[@]}" wait --for condition=established --timeout=120s crd/applications.app.k8s.io

  echo "==> KServe"
  "${apply[@]}" -k "$work/upstream/kserve"
  "${k[@]}" -n kserve rollout status deploy/kserve-controller-manager --timeout=5m

  echo "==> genops platform manifests"
  # A Job's pod template is immutable: replace the database bootstrap Job on every run.
  "${k[@]}" -n "$system_ns" delete job genops-db-init --ignore-not-found
  "${apply[@]}" -f "$work/rendered"
  "${k[@]}" wait --for=condition=Ready externalsecret --all -n "$system_ns" --timeout=5m
  "${k[@]}" wait --for=condition=Ready externalsecret --all -n "$pipeline_ns" --timeout=5m
  "${k[@]}" -n "$system_ns" wait --for=condition=complete job/genops-db-init --timeout=10m

  echo "==> Kubeflow Pipelines (databases on RDS, object store on S3)"
  "${apply[@]}" -k "$work/upstream/kfp"

  echo "==> waiting for the autoscaler and KFP"
  "${k[@]}" -n kube-system rollout status deploy/cluster-autoscaler --timeout=5m
  "${k[@]}" -n "$pipeline_ns" rollout status deploy/ml-pipeline --timeout=10m

  echo "platform installed on $cluster ($ENV); next: scripts/mlflow_k8s.sh apply $ENV"
}

[[ $# -ge 2 ]] || usage
CMD="$1"; ENV="$2"; shift 2
check_env "$ENV"

case "$CMD" in
  render) cmd_render "$@" ;;
  apply) cmd_apply ;;
  *) usage ;;
esac
