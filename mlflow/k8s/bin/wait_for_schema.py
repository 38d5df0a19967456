"""Wait until the database schema is the one this MLflow image expects, then exit 0.

The tracking server's pods run this as an initContainer: the schema upgrade is the
``mlflow-db-upgrade`` Job's work (one runner, never two migrating at once), and a server
started against an older schema would refuse to start or, worse, an older server against a
newer one. Checks the tracking store's alembic revision and, with ``--auth``, the basic-auth
tables' own revision (table ``alembic_version_auth``).

Environment: MLFLOW_BACKEND_STORE_URI (required), MLFLOW_AUTH_DATABASE_URI (optional).
Exit 0 when both are at this image's head, 1 after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def expected_heads(auth: bool) -> dict[str, str]:
    import importlib.util
    from pathlib import Path

    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_latest_schema_revision

    heads = {"alembic_version": _get_latest_schema_revision()}
    if auth:
        # Read the auth migrations folder directly: importing mlflow.server.auth would load
        # the auth app and its config, which this check does not need.
        spec = importlib.util.find_spec("mlflow.server")
        assert spec is not None and spec.submodule_search_locations
        migrations = Path(spec.submodule_search_locations[0]) / "auth" / "db" / "migrations"
        head = ScriptDirectory(str(migrations)).get_current_head()
        assert head is not None
        heads["alembic_version_auth"] = head
    return heads


def current(uri: str, table: str) -> str | None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri, pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            if not sqlalchemy.inspect(conn).has_table(table):
                return None
            return conn.execute(sqlalchemy.text(f"SELECT version_num FROM {table}")).scalar()
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--auth", action="store_true", help="check the basic-auth tables too")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--interval", type=float, default=5)
    args = parser.parse_args(argv)
    uri = os.environ.get("MLFLOW_BACKEND_STORE_URI")
    if not uri:
        print("wait_for_schema.py: MLFLOW_BACKEND_STORE_URI is not set", file=sys.stderr)
        return 2
    uris = {
        "alembic_version": uri,
        "alembic_version_auth": os.environ.get("MLFLOW_AUTH_DATABASE_URI") or uri,
    }
    heads = expected_heads(args.auth)
    deadline = time.monotonic() + args.timeout
    while True:
        found: dict[str, str | None] = {}
        for table in heads:
            try:
                found[table] = current(uris[table], table)
            except Exception as exc:  # database not reachable yet
                found[table] = f"unreachable ({type(exc).__name__})"
        if all(found[t] == h for t, h in heads.items()):
            print(f"wait_for_schema.py: schema at {heads}", file=sys.stderr)
            return 0
        if time.monotonic() > deadline:
            print(
                f"wait_for_schema.py: schema {found}, this image expects {heads}; "
                "is the mlflow-db-upgrade Job for this image done?",
                file=sys.stderr,
            )
            return 1
        print(f"wait_for_schema.py: waiting: found {found}, want {heads}", file=sys.stderr)
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
