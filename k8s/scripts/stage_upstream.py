#!/usr/bin/env python3
"""Stage the upstream kustomizations of k8s/platform/upstream for one environment.

For every k8s/platform/upstream/<name>/kustomization.yaml this writes OUT/<name>/ with:

- each remote file resource (``https://...`` without ``?ref=``) downloaded next to it and
  checked against k8s/platform/upstream/checksums.sha256; a mismatch, a missing entry or an
  ``UNLOCKED`` entry stops everything (run k8s/scripts/lock_upstream.sh after reviewing);
- git resources (``?ref=<commit>``) left remote: the commit id pins their content;
- the local patches copied;
- an ``images:`` list from the environment's image lock (mirror_images.sh), so every image
  upstream names is pulled from the environment's ECR by digest; for KFP the Argo executor
  image, which upstream passes as an argument rather than as an image field; and for
  ConfigMaps that carry images inside JSON values (KServe's inferenceservice-config:
  storage initializer, agent, router), patches that put the mirrored references there.

Stdlib only. ``--offline DIR`` takes the remote files from DIR (by file name) instead of
downloading them, which is how the tests exercise it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import urllib.request
from pathlib import Path

UPSTREAM = Path(__file__).resolve().parent.parent / "platform" / "upstream"
ARGOEXEC = "quay.io/argoproj/argoexec"


def load_checksums(path: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, url = line.split()
            sums[url] = digest
    return sums


def split_ref(ref: str) -> tuple[str, str]:
    """'ghcr.io/a/b:1.0' -> ('ghcr.io/a/b', '1.0'); a ref without a tag gets 'latest'."""
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        return ref, "latest"
    return name, tag


def image_entries(lock: dict[str, object]) -> list[dict[str, str]]:
    entries = []
    for ref, pinned in sorted(dict(lock.get("upstream") or {}).items()):
        name, _ = split_ref(ref)
        new_name, _, digest = str(pinned).partition("@")
        entries.append({"name": name, "newName": new_name, "digest": digest})
        # kustomize matches the image name as written in the manifest: docker.io/x and x.
        if name.startswith("docker.io/library/"):
            entries.append(
                {
                    "name": name.removeprefix("docker.io/library/"),
                    "newName": new_name,
                    "digest": digest,
                }
            )
        elif name.startswith("docker.io/"):
            entries.append(
                {"name": name.removeprefix("docker.io/"), "newName": new_name, "digest": digest}
            )
    return entries


def _mirrored(ref: str, upstream: dict[str, str]) -> str | None:
    for candidate in (ref, f"docker.io/{ref}", f"docker.io/library/{ref}"):
        if candidate in upstream:
            return upstream[candidate]
    return None


def configmap_image_patches(body: bytes, lock: dict[str, object]) -> list[dict[str, object]]:
    """JSON patches that replace image references held in ConfigMap JSON values."""
    import yaml

    upstream = {str(k): str(v) for k, v in dict(lock.get("upstream") or {}).items()}
    patches: list[dict[str, object]] = []
    for doc in yaml.safe_load_all(body):
        if not isinstance(doc, dict) or doc.get("kind") != "ConfigMap":
            continue
        ops = []
        for key, raw in (doc.get("data") or {}).items():
            try:
                value = json.loads(raw)
            except (TypeError, ValueError):
                continue
            if not isinstance(value, dict):
                continue
            changed = False
            for field in ("image", "defaultJobImage"):
                pinned = _mirrored(str(value.get(field, "")), upstream)
                if pinned:
                    value[field] = pinned
                    changed = True
            if changed:
                ops.append(
                    {"op": "replace", "path": f"/data/{key}", "value": json.dumps(value, indent=4)}
                )
        if ops:
            meta = doc["metadata"]
            target = {"kind": "ConfigMap", "name": meta["name"]}
            if meta.get("namespace"):
                target["namespace"] = meta["namespace"]
            patches.append({"target": target, "patch": json.dumps(ops)})
    return patches


def fetch(url: str, offline: Path | None) -> bytes:
    if offline is not None:
        return (offline / url.rsplit("/", 1)[1]).read_bytes()
    # Only https URLs reach here (stage() refuses others).
    with urllib.request.urlopen(url, timeout=120) as response:
        return bytes(response.read())


def stage(
    name: str, out: Path, lock: dict[str, object], sums: dict[str, str], offline: Path | None
) -> Path:
    import yaml  # only for writing; PyYAML ships with the project venv and kubectl users' pythons

    source = UPSTREAM / name
    target = out / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    kustomization = yaml.safe_load((source / "kustomization.yaml").read_text())
    resources = []
    extra_patches: list[dict[str, object]] = []
    for resource in kustomization.get("resources") or []:
        if not resource.startswith("https://") or "?ref=" in resource:
            resources.append(resource)
            continue
        digest = sums.get(resource)
        if digest is None:
            raise SystemExit(f"{resource}: no entry in checksums.sha256")
        if digest == "UNLOCKED":
            raise SystemExit(
                f"{resource}: checksum UNLOCKED; review the file, then record it with "
                "k8s/scripts/lock_upstream.sh"
            )
        if not resource.startswith("https://"):
            raise SystemExit(f"{resource}: only https sources are allowed")
        body = fetch(resource, offline)
        actual = hashlib.sha256(body).hexdigest()
        if actual != digest:
            raise SystemExit(f"{resource}: sha256 {actual}, checksums.sha256 says {digest}")
        local = resource.rsplit("/", 1)[1]
        (target / local).write_bytes(body)
        resources.append(local)
        extra_patches += configmap_image_patches(body, lock)
    kustomization["resources"] = resources
    kustomization["images"] = image_entries(lock)
    if extra_patches:
        kustomization["patches"] = list(kustomization.get("patches") or []) + extra_patches
    if name == "kfp":
        executor = dict(lock.get("upstream") or {}).get(f"{ARGOEXEC}:v4.0.5")
        if executor:
            kustomization.setdefault("patches", []).append(
                {
                    "target": {"kind": "Deployment", "name": "workflow-controller"},
                    "patch": json.dumps(
                        [
                            {
                                "op": "replace",
                                "path": "/spec/template/spec/containers/0/args/3",
                                "value": executor,
                            }
                        ]
                    ),
                }
            )
    (target / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", required=True, type=Path, help="the environment's image lock")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--offline", type=Path, default=None, help="take remote files from here")
    parser.add_argument("names", nargs="*", help="kustomizations to stage (default: all)")
    args = parser.parse_args(argv)
    lock = json.loads(args.lock.read_text())
    sums = load_checksums(UPSTREAM / "checksums.sha256")
    names = args.names or sorted(p.parent.name for p in UPSTREAM.glob("*/kustomization.yaml"))
    for name in names:
        print(stage(name, args.out, lock, sums, args.offline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
