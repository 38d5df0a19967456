#!/usr/bin/env bash
# Mirror every platform image into the environment's ECR and write the image lock.
#
#   k8s/scripts/mirror_images.sh ENV     copy k8s/platform/upstream/images.txt into
#                                        <registry>/mirror/<original path> (tag kept), resolve
#                                        the genops images of GENOPS_IMAGE_TAG, and write
#                                        k8s/platform/images/ENV.lock.json (reference -> digest)
#
# render_platform.py and platform.sh take every image from that lock, so the cluster pulls
# only from its own ECR (through the VPC endpoints), by digest. Re-run after changing
# images.txt or pushing new genops images; commit the lock.
#
# Environment:
#   GENOPS_TF_OUTPUTS   `terraform output -json` file; default: read terraform/envs/ENV
#   GENOPS_IMAGE_TAG    tag of the genops images (default: the pipeline version, as make push)
# Needs: aws, crane (go-containerregistry), python3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IMAGES="$ROOT/k8s/platform/upstream/images.txt"
die() { echo "mirror_images.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required but not on PATH"; }
[[ $# -eq 1 && "$1" =~ ^(dev|prod)$ ]] || die "usage: mirror_images.sh dev|prod"
ENV="$1"
need aws; need crane
PY="$ROOT/.venv/bin/python"; [[ -x "$PY" ]] || PY=python3
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
if [[ -n "${GENOPS_TF_OUTPUTS:-}" ]]; then cp "$GENOPS_TF_OUTPUTS" "$work/outputs.json"
else terraform -chdir="$ROOT/terraform/envs/$ENV" output -json >"$work/outputs.json"; fi
value() { "$PY" -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; v=v.get("value",v) if isinstance(v,dict) else v; print(v if isinstance(v,str) else json.dumps(v))' "$work/outputs.json" "$1"; }
region="$(value region)"; registry="$(value image_registry)"
aws ecr get-login-password --region "$region" | crane auth login "$registry" -u AWS --password-stdin
tag="${GENOPS_IMAGE_TAG:-$(cd "$ROOT" && "$PY" -c 'from genops.version import pipeline_version; print(pipeline_version())')}"

echo "{" >"$work/upstream.json"; first=1
while read -r ref; do
  ref="${ref%%#*}"; ref="$(echo "$ref" | xargs)"; [[ -n "$ref" ]] || continue
  name="${ref%:*}"; [[ "$name" == */* && "${name%%/*}" == *.* ]] || name="docker.io/$name"
  repo="mirror/$name"
  aws ecr describe-repositories --region "$region" --repository-names "$repo" >/dev/null 2>&1 ||
    aws ecr create-repository --region "$region" --repository-name "$repo" \
      --image-tag-mutability IMMUTABLE --image-scanning-configuration scanOnPush=true \
      --encryption-configuration encryptionType=KMS >/dev/null
  src_digest="$(crane digest "$ref")"   # the digest we copy: tag moves upstream cannot change it
  crane copy "${ref%:*}@$src_digest" "$registry/$repo:${ref##*:}" 2>/dev/null ||
    crane copy "${ref%:*}@$src_digest" "$registry/$repo@$src_digest"
  [[ $first == 1 ]] || echo "," >>"$work/upstream.json"; first=0
  printf '  "%s": "%s"' "$ref" "$registry/$repo@$src_digest" >>"$work/upstream.json"
  echo "mirrored $ref -> $registry/$repo@$src_digest"
done <"$IMAGES"
echo "}" >>"$work/upstream.json"

echo "{" >"$work/genops.json"; first=1
for kind in component train-cuda serving mlflow; do
  digest="$(crane digest "$registry/genops/$kind:$tag")" || die "genops/$kind:$tag is not in ECR: make push ENV=$ENV"
  [[ $first == 1 ]] || echo "," >>"$work/genops.json"; first=0
  printf '  "genops/%s": "%s"' "$kind" "$registry/genops/$kind@$digest" >>"$work/genops.json"
done
echo "}" >>"$work/genops.json"

mkdir -p "$ROOT/k8s/platform/images"
"$PY" - "$work" "$registry" "$tag" "$ROOT/k8s/platform/images/$ENV.lock.json" <<'PY'
import json, sys
work, registry, tag, out = sys.argv[1:]
lock = {"registry": registry, "genops_tag": tag,
        "genops": json.load(open(f"{work}/genops.json")),
        "upstream": json.load(open(f"{work}/upstream.json"))}
with open(out, "w") as f:
    json.dump(lock, f, indent=2, sort_keys=True)
    f.write("\n")
print(f"wrote {out}")
PY
