#!/usr/bin/env bash
# Install the genops cluster platform on the EKS cluster of a terraform env:
# cert-manager, Kubeflow Pipelines (standalone), KServe (RawDeployment),
# Cluster Autoscaler, the NVIDIA device plugin when the GPU AMI needs it, and
# the genops namespaces, config, secrets and kfp-launcher settings.
#
#   k8s/scripts/platform.sh render ENV OUT_DIR   offline: terraform outputs -> manifests
#   k8s/scripts/platform.sh apply  ENV           kubectl apply (needs the cluster)
#
# Environment:
#   GENOPS_TF_OUTPUTS   file with `terraform output -json`; default: read from
#                       the state of terraform/envs/ENV
#   GENOPS_DB_PASSWORD  database password; `apply` reads it from the RDS-managed
#                       secret in Secrets Manager when unset, `render` writes a
#                       placeholder when unset
#   KUBE_CONTEXT        kubectl context to use; default: `aws eks
#                       update-kubeconfig` for the env's cluster
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PLATFORM="$ROOT/k8s/platform"
RENDER="$ROOT/k8s/scripts/render_platform.py"

# Scratch directory (terraform outputs, rendered manifests with the DB password);
# removed on exit whatever happens.
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
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; v=v["value"] if isinstance(v,dict) and "value" in v else v; print(v if isinstance(v,str) else json.dumps(v))' "$1" "$2"
}

cmd_render() {
  local out="${1:-}"
  [[ -n "$out" ]] || die "usage: platform.sh render ENV OUT_DIR"
  need python3
  outputs_json "$WORK/outputs.json"
  python3 "$RENDER" --outputs "$WORK/outputs.json" --out "$out" --allow-placeholder-password
}

cmd_apply() {
  need kubectl
  need python3
  local work="$WORK"
  outputs_json "$work/outputs.json"

  local region cluster
  region="$(output_value "$work/outputs.json" region)"
  cluster="$(output_value "$work/outputs.json" cluster_name)"

  if [[ -z "${GENOPS_DB_PASSWORD:-}" ]]; then
    need aws
    local secret_arn
    secret_arn="$(output_value "$work/outputs.json" database_secret_arn)"
    GENOPS_DB_PASSWORD="$(aws secretsmanager get-secret-value --region "$region" --secret-id "$secret_arn" \
      --query SecretString --output text | python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])')"
    export GENOPS_DB_PASSWORD
  fi

  local ctx="${KUBE_CONTEXT:-}"
  if [[ -z "$ctx" ]]; then
    need aws
    aws eks update-kubeconfig --region "$region" --name "$cluster" --alias "$cluster" >/dev/null
    ctx="$cluster"
  fi
  local k=(kubectl --context "$ctx")

  python3 "$RENDER" --outputs "$work/outputs.json" --out "$work/rendered" >/dev/null

  echo "==> cert-manager"
  "${k[@]}" apply --server-side -k "$PLATFORM/upstream/cert-manager"
  "${k[@]}" -n cert-manager rollout status deploy/cert-manager-webhook --timeout=5m

  echo "==> Kubeflow Pipelines"
  "${k[@]}" apply -k "$PLATFORM/upstream/kfp-cluster-scoped"
  "${k[@]}" wait --for condition=established --timeout=120s crd/applications.app.k8s.io
  "${k[@]}" apply -k "$PLATFORM/upstream/kfp"

  echo "==> KServe"
  "${k[@]}" apply --server-side --force-conflicts -k "$PLATFORM/upstream/kserve"
  "${k[@]}" -n kserve rollout status deploy/kserve-controller-manager --timeout=5m
  "${k[@]}" apply --server-side --force-conflicts -k "$PLATFORM/upstream/kserve-runtimes"

  echo "==> genops platform manifests"
  "${k[@]}" apply --server-side --field-manager=genops-platform -f "$work/rendered/00-namespaces.yaml"
  local pipeline_ns
  pipeline_ns="$(output_value "$work/outputs.json" service_accounts |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["pipeline_runner"].split("/")[0])')"
  # A Job's pod template is immutable: replace the init job on every run.
  "${k[@]}" -n "$pipeline_ns" delete job genops-db-init --ignore-not-found
  "${k[@]}" apply --server-side --field-manager=genops-platform -f "$work/rendered"

  echo "==> waiting for the database init job and the autoscaler"
  "${k[@]}" -n "$pipeline_ns" wait --for=condition=complete job/genops-db-init --timeout=5m
  "${k[@]}" -n kube-system rollout status deploy/cluster-autoscaler --timeout=5m
  "${k[@]}" -n "$pipeline_ns" rollout status deploy/ml-pipeline --timeout=10m

  echo "platform installed on $cluster ($ENV)"
}

[[ $# -ge 2 ]] || usage
CMD="$1"; ENV="$2"; shift 2
check_env "$ENV"

case "$CMD" in
  render) cmd_render "$@" ;;
  apply) cmd_apply ;;
  *) usage ;;
esac
