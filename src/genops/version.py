"""One place for the version a compiled pipeline names: package version + git commit.

Light on purpose (stdlib only): the components module imports it at compile time.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from genops import __version__


def git_commit(default: str = "unknown") -> str:
    """The commit of the working tree, or GENOPS_GIT_COMMIT (set in images), or ``default``."""
    env = os.environ.get("GENOPS_GIT_COMMIT")
    if env:
        return env
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return default
    return out.stdout.strip() or default


def pipeline_version() -> str:
    """``<package version>-<commit>``, e.g. ``0.1.0-1a2b3c4d5e6f``; also the image tag."""
    return f"{__version__}-{git_commit()}"


def image(kind: str = "component") -> str:
    """The image a component runs in: ``$GENOPS_IMAGE_REGISTRY/genops/<kind>:<version>``.

    Locally the image is never pulled (KFP's subprocess runner uses this interpreter); on the
    cluster the registry is the ECR registry from Terraform's outputs.
    """
    registry = os.environ.get("GENOPS_IMAGE_REGISTRY", "localhost:5000")
    return f"{registry}/genops/{kind}:{pipeline_version()}"
