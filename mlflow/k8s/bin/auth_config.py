"""Write the basic-auth config of the MLflow tracking server (``MLFLOW_AUTH_CONFIG_PATH``).

MLflow reads the auth database URI only from this INI file, never from the environment, and
the URI holds the database password: so the file is written at pod start (an initContainer)
into a memory-backed emptyDir from the Secret-provided environment, never stored in a
ConfigMap. The admin password is not written here: the server reads it from
``MLFLOW_AUTH_ADMIN_PASSWORD`` (a Secret) the first time it starts against an empty user table.

Environment:
  MLFLOW_BACKEND_STORE_URI        required; the auth tables live in the same database as the
                                  tracking store (their own alembic version table)
  MLFLOW_AUTH_DATABASE_URI        optional; a separate database for users and permissions
  MLFLOW_AUTH_DEFAULT_PERMISSION  optional; READ (default), EDIT, MANAGE or NO_PERMISSIONS
  MLFLOW_AUTH_ADMIN_USERNAME      optional; default admin

The same script starts the local server with auth (scripts/mlflow_stack.py) and is tested
there against a real PostgreSQL.
"""

from __future__ import annotations

import argparse
import configparser
import io
import os
import sys
from pathlib import Path

PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")


def render(env: dict[str, str]) -> str:
    uri = env.get("MLFLOW_AUTH_DATABASE_URI") or env.get("MLFLOW_BACKEND_STORE_URI")
    if not uri:
        raise SystemExit("auth_config.py: MLFLOW_BACKEND_STORE_URI is not set")
    permission = env.get("MLFLOW_AUTH_DEFAULT_PERMISSION", "READ")
    if permission not in PERMISSIONS:
        raise SystemExit(
            f"auth_config.py: MLFLOW_AUTH_DEFAULT_PERMISSION must be one of {PERMISSIONS}"
        )
    config = configparser.ConfigParser()
    # MLflow reads the file with interpolation: a URL-encoded password's '%' must be doubled.
    config["mlflow"] = {
        "default_permission": permission,
        "database_uri": uri.replace("%", "%%"),
        "admin_username": env.get("MLFLOW_AUTH_ADMIN_USERNAME", "admin"),
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    out = io.StringIO()
    config.write(out)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the INI file to write")
    args = parser.parse_args(argv)
    text = render(dict(os.environ))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(out)
    print(f"auth_config.py: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
