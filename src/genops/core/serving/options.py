"""The model server's hardening options, shared by ``python -m genops.core.serving.server``
and ``genops serve``, and the model URIs it takes (kept light: the CLI builds its parser,
and the deploy module reads server records, without importing the server)."""

from __future__ import annotations

import argparse
import os
import re

MAX_BODY_ENV = "GENOPS_MAX_BODY_BYTES"
FOLLOW_ENV = "GENOPS_FOLLOW_INTERVAL"
#: The largest request body the model server reads (1 MiB); larger ones are answered 413.
DEFAULT_MAX_BODY_BYTES = 1_048_576
#: How often a server on ``models:/<name>@<alias>`` checks the alias, in seconds.
DEFAULT_FOLLOW_INTERVAL = 30.0

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))$")


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def add_hardening_arguments(parser: argparse.ArgumentParser) -> None:
    """``--max-body-bytes`` and ``--follow-interval``."""
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=int(_env_number(MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES)),
        help=f"largest request body in bytes, larger ones get 413 (default ${MAX_BODY_ENV} "
        f"or {DEFAULT_MAX_BODY_BYTES:,})",
    )
    parser.add_argument(
        "--follow-interval",
        type=float,
        default=_env_number(FOLLOW_ENV, DEFAULT_FOLLOW_INTERVAL),
        help="on a models:/<name>@<alias> URI, check the alias every this many seconds and "
        f"serve the version it points at; 0 never checks (default ${FOLLOW_ENV} or "
        f"{DEFAULT_FOLLOW_INTERVAL:g})",
    )


def parse_models_uri(model_uri: str) -> tuple[str, str | None, str | None] | None:
    """``(name, alias, version)`` of ``models:/<name>@<alias>`` or ``models:/<name>/<v>``;
    None for other URIs."""
    match = _MODELS_URI.match(model_uri)
    if match is None:
        return None
    return match["name"], match["alias"], match["version"]
