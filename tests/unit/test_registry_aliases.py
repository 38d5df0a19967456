from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from genops.core.aliases import (
    CHAMPION,
    RegistryError,
    alias_version,
    champion_metrics,
    promote,
    rollback,
)


def _register(uri: str, auc: float) -> str:
    """A model version of ``toy`` whose run logged ``auc`` (no model files: aliases and
    tags are all these tests need, and logging a real model costs seconds)."""
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    if not client.search_registered_models(filter_string="name = 'toy'"):
        client.create_registered_model("toy")
    with mlflow.start_run() as run:
        mlflow.log_metric("utility_tstr_auc", auc)
    version = client.create_model_version(
        "toy",
        f"runs:/{run.info.run_id}/model",
        run_id=run.info.run_id,
        tags={"genops.pipeline_run_id": run.info.run_id},
    )
    return str(version.version)


def test_promote_and_rollback(tracking_uri: str) -> None:
    v1, v2, v3 = (_register(tracking_uri, auc) for auc in (0.8, 0.85, 0.9))
    assert champion_metrics("toy", tracking_uri) == (None, None)
    with pytest.raises(RegistryError, match="no champion: nothing to roll back"):
        rollback("toy", tracking_uri)

    assert promote("toy", v1, tracking_uri).describe() == "toy@champion: none -> v1"
    with pytest.raises(RegistryError, match="first champion: there is no previous"):
        rollback("toy", tracking_uri)

    promote("toy", v2, tracking_uri)
    move = promote("toy", v3, tracking_uri)
    assert (move.from_version, move.to_version) == (v2, v3)
    version, metrics = champion_metrics("toy", tracking_uri)
    assert version == v3 and metrics == {"utility_tstr_auc": 0.9}

    assert rollback("toy", tracking_uri).describe() == "toy@champion: v3 -> v2"
    assert alias_version("toy", CHAMPION, tracking_uri) == v2
    assert rollback("toy", tracking_uri).to_version == v1
    with pytest.raises(RegistryError):
        promote("toy", "99", tracking_uri)


def _history(uri: str) -> list[str]:
    import json

    from genops.core.aliases import HISTORY_TAG

    mlflow.set_tracking_uri(uri)
    return list(json.loads(mlflow.MlflowClient().get_registered_model("toy").tags[HISTORY_TAG]))


def _rolled_back(uri: str, version: str) -> bool:
    tags = mlflow.MlflowClient(tracking_uri=uri).get_model_version("toy", version).tags
    return tags.get("genops.rolled_back") == "true"


def test_history_is_kept_in_the_registry_newest_first(tracking_uri: str) -> None:
    from genops.core.aliases import champion_history

    v1, v2, v3 = (_register(tracking_uri, auc) for auc in (0.8, 0.85, 0.9))
    for version in (v1, v2, v3):
        promote("toy", version, tracking_uri)
    promote("toy", v3, tracking_uri)  # promoting the champion again changes nothing
    assert _history(tracking_uri) == [v3, v2, v1] == champion_history("toy", tracking_uri)
    rollback("toy", tracking_uri)
    assert _history(tracking_uri) == [v2, v3, v2, v1]  # every move of champion, newest first


def test_repeated_rollbacks_after_a_manual_promote_do_not_bounce(tracking_uri: str) -> None:
    v1, v2, v3 = (_register(tracking_uri, auc) for auc in (0.8, 0.85, 0.9))
    for version in (v1, v2, v3):
        promote("toy", version, tracking_uri)
    assert rollback("toy", tracking_uri).to_version == v2  # v3 rolled back
    promote("toy", v1, tracking_uri)  # by hand
    assert rollback("toy", tracking_uri).describe() == f"toy@champion: v{v1} -> v{v2}"
    # v1 and v3 are rolled back, v2 is the champion: nothing earlier may be restored
    with pytest.raises(RegistryError, match=r"no earlier champion may be restored: v1 \(rolled"):
        rollback("toy", tracking_uri)
    assert alias_version("toy", CHAMPION, tracking_uri) == v2
    assert [_rolled_back(tracking_uri, v) for v in (v1, v2, v3)] == [True, False, True]


def test_the_old_bounce_two_versions_promoted_by_hand(tracking_uri: str) -> None:
    """The issue's case: promote 1, 2; rollback; promote 2 by hand; rollback; rollback.
    The old links bounced 2 -> 1 -> 2; the history stops instead."""
    v1, v2 = (_register(tracking_uri, auc) for auc in (0.8, 0.85))
    promote("toy", v1, tracking_uri)
    promote("toy", v2, tracking_uri)
    assert rollback("toy", tracking_uri).to_version == v1
    assert _rolled_back(tracking_uri, v2)
    promote("toy", v2, tracking_uri)  # a person chose v2 again: its tag is cleared
    assert not _rolled_back(tracking_uri, v2)
    assert rollback("toy", tracking_uri).to_version == v1
    with pytest.raises(RegistryError, match="no earlier champion may be restored"):
        rollback("toy", tracking_uri)
    assert alias_version("toy", CHAMPION, tracking_uri) == v1


def test_a_version_tagged_rolled_back_is_never_restored(tracking_uri: str) -> None:
    v1, v2, v3, v4 = (_register(tracking_uri, auc) for auc in (0.8, 0.85, 0.9, 0.91))
    for version in (v1, v2, v3, v4):
        promote("toy", version, tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    client.set_model_version_tag("toy", v3, "genops.rolled_back", "true")
    client.delete_model_version("toy", v2)  # a deleted version is skipped too
    assert rollback("toy", tracking_uri).describe() == f"toy@champion: v{v4} -> v{v1}"
    with pytest.raises(RegistryError, match=r"v4 \(rolled back\), v3 \(rolled back\), v2 \(del"):
        rollback("toy", tracking_uri)


def test_a_store_without_history_walks_the_previous_champion_links(tracking_uri: str) -> None:
    """Versions promoted before the history tag existed: the chain comes from
    genops.previous_champion, and a cycle the old rollback left ends it."""
    from genops.core.aliases import PREVIOUS_TAG

    v1, v2, v3 = (_register(tracking_uri, auc) for auc in (0.8, 0.85, 0.9))
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    client.set_model_version_tag("toy", v2, PREVIOUS_TAG, v1)
    client.set_model_version_tag("toy", v3, PREVIOUS_TAG, v2)
    client.set_model_version_tag("toy", v1, PREVIOUS_TAG, v3)  # a cycle
    client.set_registered_model_alias("toy", CHAMPION, v3)
    assert rollback("toy", tracking_uri).to_version == v2
    assert rollback("toy", tracking_uri).to_version == v1
    with pytest.raises(RegistryError, match="no earlier champion may be restored"):
        rollback("toy", tracking_uri)


def test_retiring_the_first_champion_tags_it(tracking_uri: str) -> None:
    from genops.core.aliases import retire_champion

    v1, v2 = (_register(tracking_uri, auc) for auc in (0.8, 0.85))
    promote("toy", v1, tracking_uri)
    assert retire_champion("toy", tracking_uri) == v1
    assert alias_version("toy", CHAMPION, tracking_uri) is None and _rolled_back(tracking_uri, v1)
    promote("toy", v2, tracking_uri)
    with pytest.raises(RegistryError, match=r"v1 \(rolled back\)"):
        rollback("toy", tracking_uri)
    assert retire_champion("toy", tracking_uri) == v2
    assert retire_champion("toy", tracking_uri) is None


def test_the_history_survives_the_process(tracking_uri: str, tmp_path: Path) -> None:
    """Promotions and a rollback here, the next rollback by `genops rollback` in another
    process: it reads the chain from the registry and goes on from there."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    v1, v2, v3 = (_register(tracking_uri, auc) for auc in (0.8, 0.85, 0.9))
    for version in (v1, v2, v3):
        promote("toy", version, tracking_uri)
    assert rollback("toy", tracking_uri).to_version == v2
    command = [sys.executable, "-m", "genops.cli", "rollback", "--model", "toy"]
    command += ["--tracking-uri", tracking_uri]
    env = {**os.environ, "GENOPS_HOME": str(tmp_path)}  # no local server listed there
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]
    assert "rolled back: toy@champion: v2 -> v1" in done.stdout
    assert "local servers: none serves toy" in done.stdout
    assert alias_version("toy", CHAMPION, tracking_uri) == v1
    with pytest.raises(RegistryError, match="no earlier champion may be restored"):
        rollback("toy", tracking_uri)
