#!/usr/bin/env bash
# Record the sha256 of every UNLOCKED upstream file in k8s/platform/upstream/checksums.sha256.
#
#   k8s/scripts/lock_upstream.sh            download each UNLOCKED file, print it for review,
#                                           write its sha256 into checksums.sha256
#
# Review what you lock: from then on platform.sh applies exactly these bytes and refuses any
# other. Needs curl and sha256sum; run where github.com is reachable. Commit the result.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SUMS="$ROOT/k8s/platform/upstream/checksums.sha256"
command -v curl >/dev/null || { echo "lock_upstream.sh: curl is required" >&2; exit 1; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
grep '^UNLOCKED ' "$SUMS" | while read -r _ url; do
  [[ "$url" =~ ^https:// ]] || { echo "refusing non-https $url" >&2; exit 1; }
  file="$work/$(basename "$url")"
  curl -fsSL --proto '=https' "$url" -o "$file"
  digest="$(sha256sum "$file" | cut -d' ' -f1)"
  echo "$url"
  echo "  $(wc -c <"$file") bytes, sha256 $digest; images: $(grep -oE 'image: *[^ ]+' "$file" | sort -u | tr '\n' ' ')"
  sed -i "s|^UNLOCKED $url\$|$digest  $url|" "$SUMS"
done
echo "updated $SUMS; review 'git diff' and commit it"
