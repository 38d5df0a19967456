#!/usr/bin/env bash
# Air-gapped build mode: what `docker/build.sh` needs when no container registry and no Python
# package index can be reached from the builds (only a Debian mirror, or nothing at all).
#
#   docker/offline.sh base            the base image, from Debian packages (debootstrap)
#   docker/offline.sh wheels [SET..]  fill the wheelhouse on this host (pip download, the lock)
#   docker/offline.sh all [SET..]     both
#   docker/offline.sh for [KIND..]    the base and the sets those images need (default: every
#                                     image; what `make images OFFLINE=1` runs)
#
# base: `debootstrap --variant=minbase bookworm` with python3 (3.11, the lock's Python) and
#   python3-venv, a `python` command, no apt lists or caches, imported with `docker import` as
#   $GENOPS_OFFLINE_BASE (default genops/python-bookworm:3.11-debootstrap). The Dockerfiles
#   take it as `--build-arg PYTHON_IMAGE=...` in place of python:3.11.15-slim-bookworm. Skipped
#   when the image exists (FRESH=1 rebuilds it). Needs root and debootstrap
#   (`apt-get install debootstrap`).
# wheels: every wheel the images install, for CPython 3.11 on manylinux x86_64, downloaded
#   with `pip download --only-binary=:all:` under constraints.txt into docker/wheelhouse/
#   (the build context sees it; the Dockerfiles bind-mount it, no layer keeps it):
#     common/      the genops package's dependencies, mlflow-requirements.txt, pip, setuptools
#     torch-cpu/   torch's CPU build (component, serving images)
#     torch-cuda/  torch's CUDA 13 build and the CUDA wheels it pins (train-cuda image, ~4 GB)
#   SETs: common, torch-cpu, torch-cuda (default: all three). A set whose stamp matches the
#   lock's hash is not downloaded again.
#
# Environment:
#   GENOPS_DEBIAN_MIRROR   default http://deb.debian.org/debian
#   GENOPS_OFFLINE_BASE    the base image's tag
#   GENOPS_TORCH_CPU_INDEX where torch's CPU build comes from
#                          (default https://download.pytorch.org/whl/cpu; pip's own
#                          configuration, e.g. find-links, is used too)
#   PIP                    pip of a Python 3.11 (default .venv/bin/pip, else python3 -m pip)
#   DOCKER                 docker CLI
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 1 && "$1" != "-h" && "$1" != "--help" ]] || {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 2; }

MIRROR="${GENOPS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WHEELHOUSE="$ROOT/docker/wheelhouse"
SETS=(torch-cpu common torch-cuda)
# manylinux tags a bookworm (glibc 2.36) x86_64 interpreter accepts, newest first.
PLATFORMS=()
for minor in $(seq 36 -1 17); do PLATFORMS+=(--platform "manylinux_2_${minor}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64
  --platform manylinux1_x86_64 --platform linux_x86_64)
TARGET=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --abi abi3
  --abi none "${PLATFORMS[@]}" --platform any)

pip_cmd() {
  if [[ -n "${PIP:-}" ]]; then echo "$PIP"
  elif [[ -x "$ROOT/.venv/bin/pip" ]]; then echo "$ROOT/.venv/bin/pip"
  else echo "python3 -m pip"
  fi
}

build_base() {
  need "$DOCKER"
  if [[ -z "${FRESH:-}" ]] && "$DOCKER" image inspect "$OFFLINE_BASE" >/dev/null 2>&1; then
    echo "==> base $OFFLINE_BASE: present (FRESH=1 rebuilds it)"
    return
  fi
  command -v debootstrap >/dev/null 2>&1 ||
    die "debootstrap is missing: apt-get install -y debootstrap (as root)"
  [[ "$(id -u)" == 0 ]] || die "debootstrap needs root"
  local rootfs
  rootfs="$(mktemp -d)"
  # shellcheck disable=SC2064  # expand now: the trap must remove this folder
  trap "rm -rf '$rootfs'" RETURN
  echo "==> debootstrap bookworm ($MIRROR) into $rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 ||
    { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap failed"; }
  rm -f "$rootfs.log"
  # What the python:*-slim images offer: `python`, no package lists or caches, no docs.
  ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
  echo "==> docker import $OFFLINE_BASE"
  tar -C "$rootfs" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap --variant=minbase bookworm + python3 python3-venv" \
    - "$OFFLINE_BASE" >/dev/null
  "$DOCKER" run --rm --network none "$OFFLINE_BASE" python -c \
    'import sys, venv, ssl, sqlite3; assert sys.version_info[:2] == (3, 11), sys.version'
}

# The lock's hash: a set is downloaded again only when the lock or the requirements change.
lock_hash() {
  cat "$ROOT/constraints.txt" "$ROOT/pyproject.toml" "$ROOT/docker/mlflow-requirements.txt" \
    "$ROOT/docker/constraints-cuda.txt" | sha256sum |
    cut -c1-16
}

# download SET: pip download into docker/wheelhouse/SET (a temporary folder renamed at the end).
download() {
  local set="$1" dest tmp pip
  dest="$WHEELHOUSE/$set"
  if [[ -z "${FRESH:-}" && -f "$dest/.lock-hash" && "$(cat "$dest/.lock-hash")" == "$(lock_hash)" ]]; then
    echo "==> wheels $set: up to date ($(du -sh "$dest" | cut -f1))"
    return
  fi
  pip="$(pip_cmd)"
  tmp="$WHEELHOUSE/.$set.partial"
  mkdir -p "$tmp"
  echo "==> wheels $set -> docker/wheelhouse/$set"
  local -a dl
  read -r -a dl <<<"$pip"
  dl+=(download --quiet --dest "$tmp" "${TARGET[@]}")
  case "$set" in
    torch-cpu)
      # pip's own configuration first (an index or find-links may hold the CPU build), then
      # the PyTorch CPU index.
      "${dl[@]}" --no-deps -c "$ROOT/constraints.txt" "torch==$(lock_version torch)+cpu" ||
        "${dl[@]}" --no-deps -c "$ROOT/constraints.txt" \
          --extra-index-url "${GENOPS_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}" \
          "torch==$(lock_version torch)+cpu"
      ;;
    common)
      # The package's dependencies (pyproject.toml) resolved under the lock, with torch's CPU
      # build for its dependencies (then dropped: it lives in torch-cpu/), the build backend,
      # pip, and the MLflow server's requirements.
      [[ -d "$WHEELHOUSE/torch-cpu" ]] || download torch-cpu
      # `pip wheel`, not `pip download`: kfp, kfp-kubernetes and kfp-server-api are published
      # as sources only; their (pure-Python) wheels are built here, so this host must be the
      # images' platform (Linux x86_64, CPython 3.11).
      check_host_python
      local -a wh
      read -r -a wh <<<"$pip"
      # shellcheck disable=SC2046  # one word per requirement
      "${wh[@]}" wheel --quiet --prefer-binary --wheel-dir "$tmp" -c "$ROOT/constraints.txt" \
        --find-links "$WHEELHOUSE/torch-cpu" \
        "pip==$PIP_VERSION" "setuptools==$SETUPTOOLS_VERSION" \
        -r "$ROOT/docker/mlflow-requirements.txt" $(project_requirements)
      rm -f "$tmp"/torch-*.whl
      ;;
    torch-cuda)
      # PyPI's torch for Linux x86_64 is the CUDA 13 build; with the CUDA wheels it pins
      # (constraints-cuda.txt; what it shares with the lock is in common/).
      # pip's configuration is left out: a find-links folder holding the CPU build (whose
      # version, 2.13.0+cpu, also matches ==2.13.0) would win over PyPI's.
      # shellcheck disable=SC2046
      env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_CONSTRAINT \
        PIP_CONFIG_FILE=/dev/null "${dl[@]}" --no-deps --index-url https://pypi.org/simple \
        "torch==$(lock_version torch)" $(grep -vE '^(#|$)' "$ROOT/docker/constraints-cuda.txt")
      ! compgen -G "$tmp/torch-*+*.whl" >/dev/null ||
        die "torch-cuda: got $(basename "$(compgen -G "$tmp/torch-*+*.whl")"), not PyPI's CUDA build"
      ;;
    *) die "unknown wheel set '$set' (known: ${SETS[*]})" ;;
  esac
  lock_hash >"$tmp/.lock-hash"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  echo "    $(find "$dest" -name '*.whl' | wc -l) wheels, $(du -sh "$dest" | cut -f1)"
}

# The [project] dependencies of pyproject.toml, one per line.
project_requirements() {
  "$(python_cmd)" -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
    "$ROOT/pyproject.toml"
}

check_host_python() {
  local pip tag
  pip="$(pip_cmd)"
  tag="$($pip --version | sed -E 's/.*\(python ([0-9]+\.[0-9]+)\)$/\1/')"
  [[ "$tag" == 3.11 && "$(uname -s)-$(uname -m)" == Linux-x86_64 ]] ||
    die "the wheelhouse is built with a Linux x86_64 CPython 3.11 pip (got $tag on" \
      "$(uname -s)-$(uname -m)); set PIP to one"
}

lock_version() {
  sed -n "s/^$1==//p" "$ROOT/constraints.txt" | head -1
}

wheels() {
  local sets=("$@") set
  [[ ${#sets[@]} -gt 0 ]] || sets=("${SETS[@]}")
  for set in "${sets[@]}"; do download "$set"; done
}

cmd="$1"; shift
case "$cmd" in
  base) build_base ;;
  wheels) wheels "$@" ;;
  all) build_base; wheels "$@" ;;
  for)
    kinds=("$@")
    [[ ${#kinds[@]} -gt 0 ]] || kinds=("${KINDS[@]}")
    check_kinds "${kinds[@]}"
    # shellcheck disable=SC2046  # one word per set
    build_base && wheels $(for k in "${kinds[@]}"; do wheel_sets "$k"; done | tr ' ' '\n' | sort -u)
    ;;
  *) die "unknown command '$cmd' (base, wheels, all, for)" ;;
esac
