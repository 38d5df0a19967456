#!/usr/bin/env bash
# Deploy the MLflow tracking server (mlflow/k8s) on the EKS cluster of a terraform env.
#
#   scripts/mlflow_k8s.sh render ENV OUT_FILE   offline: the manifests with the image set
#   scripts/mlflow_k8s.sh apply  ENV            run the schema upgrade Job, roll out the
#                                               server, then the mlflow-users Job
#
# Needs `make platform` first: namespace mlflow, ConfigMap genops-config, and the Secrets
# genops-secrets (backend store URI, MLflow's own database user) and mlflow-auth (admin
# password, Flask key, the pipelines' MLflow user), both synced by External Secrets from
# Secrets Manager; and the image <ECR>/genops/mlflow pushed and mirrored (its digest is in
# k8s/platform/images/ENV.lock.json: `apply` deploys only by digest).
#
# Environment:
#   GENOPS_TF_OUTPUTS   file with `terraform output -json`; default: read from the state of
#                       terraform/envs/ENV
#   GENOPS_IMAGES_LOCK  image lock; default k8s/platform/images/ENV.lock.json (genops/mlflow)
#   MLFLOW_IMAGE_TAG    image tag, for `render` (review) only: default the lock's digest
#   MLFLOW_IMAGE        full image reference (repo@sha256:... for apply); overrides the above
#   KUBE_CONTEXT        kubectl context; default: `aws eks update-kubeconfig` for the env
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="$ROOT/mlflow/k8s"
NS=mlflow

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
  exit 2
}
die() { echo "mlflow_k8s.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required but not on PATH"; }

PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || PY=python3

outputs_json() {  # outputs_json FILE
  if [[ -n "${GENOPS_TF_OUTPUTS:-}" ]]; then
    cp "$GENOPS_TF_OUTPUTS" "$1"
  else
    need terraform
    terraform -chdir="$ROOT/terraform/envs/$ENV" output -json >"$1"
  fi
}

output_value() {  # output_value FILE NAME [KEY]
  "$PY" - "$@" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))[sys.argv[2]]
v = v["value"] if isinstance(v, dict) and "value" in v else v
if len(sys.argv) > 3:
    v = v[sys.argv[3]]
print(v if isinstance(v, str) else json.dumps(v))
EOF
}

image_ref() {  # image_ref OUTPUTS_FILE
  if [[ -n "${MLFLOW_IMAGE:-}" ]]; then
    echo "$MLFLOW_IMAGE"
    return
  fi
  local lock="${GENOPS_IMAGES_LOCK:-$ROOT/k8s/platform/images/$ENV.lock.json}"
  if [[ -z "${MLFLOW_IMAGE_TAG:-}" && -f "$lock" ]]; then
    "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["genops"]["genops/mlflow"])' "$lock"
    return
  fi
  local repo tag
  repo="$(output_value "$1" ecr_repository_urls genops/mlflow)"
  tag="${MLFLOW_IMAGE_TAG:-$(cd "$ROOT" && "$PY" -c 'from genops.version import pipeline_version; print(pipeline_version())')}"
  echo "$repo:$tag"
}

# Renders the base with the image set into $2 (a single YAML stream).
render_to() {  # render_to OUTPUTS_FILE OUT_FILE
  local image overlay
  image="$(image_ref "$1")"
  local new
  if [[ "$image" =~ ^[^@]+@sha256:[0-9a-f]{64}$ ]]; then
    new="    newName: ${image%@*}
    digest: ${image#*@}"
  elif [[ "$image" =~ ^[^:@]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$ ]]; then
    new="    newName: ${image%:*}
    newTag: ${image##*:}"
  else
    die "bad image reference: $image"
  fi
  overlay="$(mktemp -d)"
  # kustomize needs the base by a relative path from the overlay.
  local rel
  rel="$("$PY" -c 'import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$BASE" "$overlay")"
  cat >"$overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $rel
images:
  - name: genops/mlflow
$new
EOF
  if command -v kustomize >/dev/null 2>&1; then
    kustomize build "$overlay" >"$2"
  else
    need kubectl
    kubectl kustomize "$overlay" >"$2"
  fi
  rm -rf "$overlay"
}

cmd_render() {
  local out="${1:-}"
  [[ -n "$out" ]] || die "usage: mlflow_k8s.sh render ENV OUT_FILE"
  local tmp; tmp="$(mktemp -d)"
  outputs_json "$tmp/outputs.json"
  render_to "$tmp/outputs.json" "$out"
  rm -rf "$tmp"
}

cmd_apply() {
  need kubectl
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  outputs_json "$work/outputs.json"
  render_to "$work/outputs.json" "$work/mlflow.yaml"

  local ctx="${KUBE_CONTEXT:-}"
  if [[ -z "$ctx" ]]; then
    need aws
    local region cluster
    region="$(output_value "$work/outputs.json" region)"
    cluster="$(output_value "$work/outputs.json" cluster_name)"
    aws eks update-kubeconfig --region "$region" --name "$cluster" --alias "$cluster" >/dev/null
    ctx="$cluster"
  fi
  local k=(kubectl --context "$ctx" -n "$NS")

  grep -q '@sha256:' "$work/mlflow.yaml" || die "apply deploys by digest only: run k8s/scripts/mirror_images.sh $ENV (or set MLFLOW_IMAGE=repo@sha256:...)"
  "${k[@]}" get configmap genops-config >/dev/null || die "ConfigMap $NS/genops-config missing: run 'make platform' first"
  "${k[@]}" get secret genops-secrets >/dev/null || die "Secret $NS/genops-secrets missing: run 'make platform' first"
  "${k[@]}" get secret mlflow-auth >/dev/null || die "Secret $NS/mlflow-auth missing: run 'make platform' first"

  # A running upgrade must finish; a finished Job is replaced (its pod template is immutable).
  if "${k[@]}" get job mlflow-db-upgrade >/dev/null 2>&1; then
    "${k[@]}" wait --for=condition=complete job/mlflow-db-upgrade --timeout=30m || true
    "${k[@]}" delete job mlflow-db-upgrade --wait=true
  fi
  echo "==> applying $(grep -m1 'image: ' "$work/mlflow.yaml" | awk '{print $2}')"
  "${k[@]}" apply -f "$work/mlflow.yaml"
  "${k[@]}" wait --for=condition=complete job/mlflow-db-upgrade --timeout=30m
  "${k[@]}" rollout status deploy/mlflow --timeout=15m
  # The pipelines' MLflow user, with the password Secrets Manager holds (re-set on every run).
  local image; image="$(grep -m1 'image: ' "$work/mlflow.yaml" | awk '{print $2}')"
  "${k[@]}" delete job mlflow-users --ignore-not-found --wait=true
  sed "s|image: genops/mlflow|image: $image|" "$BASE/users-job.yaml" | "${k[@]}" apply -f -
  "${k[@]}" wait --for=condition=complete job/mlflow-users --timeout=15m
  echo "MLflow is up. UI: kubectl --context $ctx -n $NS port-forward svc/mlflow 5000:5000"
  echo "admin password: in Secrets Manager, $(output_value "$work/outputs.json" mlflow_user_secret_arns admin)"
}

[[ $# -ge 2 ]] || usage
CMD="$1"; ENV="$2"; shift 2
[[ "$ENV" =~ ^(dev|prod)$ ]] || die "ENV must be dev or prod (got '$ENV')"
case "$CMD" in
  render) cmd_render "$@" ;;
  apply) cmd_apply ;;
  *) usage ;;
esac
