from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from genops.core.tuning import ParamSpec, TuningSpec, suggest
from genops.core.tuning.study import create_study, run_worker, summarize
from genops.workloads.tabular.config import DatasetSpec
from genops.workloads.tabular.models import TVAEParams, TVAESynthesizer
from genops.workloads.tabular.tuning import ObjectiveData, TabularObjective
from tests.conftest import SMALL_SPEC, small_frame

SPEC = DatasetSpec.model_validate(SMALL_SPEC)


def test_trials_are_split_across_workers() -> None:
    spec = TuningSpec(n_trials=7, n_workers=3)
    assert [spec.trials_for_worker(w) for w in range(3)] == [3, 2, 2]


def test_search_space_validation() -> None:
    with pytest.raises(ValueError, match="needs a non-empty 'choices'"):
        ParamSpec(type="categorical", choices=[])
    with pytest.raises(ValueError, match="low <= high"):
        ParamSpec(type="float", low=1.0, high=0.1)


def test_suggest_draws_family_specific_keys_only_for_their_family() -> None:
    space = {
        "family": ParamSpec(type="categorical", choices=["tvae", "ctgan"]),
        "epochs": ParamSpec(type="int", low=10, high=30, step=10),
        "tvae.learning_rate": ParamSpec(type="float", low=1e-4, high=1e-2, log=True),
        "ctgan.generator_lr": ParamSpec(type="float", low=1e-4, high=1e-3, log=True),
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        params = suggest(trial, space)
        seen.add(params["family"])
        assert params["epochs"] in (10, 20, 30)
        if params["family"] == "tvae":
            assert "learning_rate" in params and "generator_lr" not in params
        else:
            assert "generator_lr" in params and "learning_rate" not in params
        study.tell(trial, 0.0)
    assert seen == {"tvae", "ctgan"}


def _data() -> ObjectiveData:
    return ObjectiveData(
        train=small_frame(600, seed=1),
        validation=small_frame(200, seed=2),
        continuous=SPEC.continuous_columns,
        categorical=SPEC.categorical_columns,
        target="label",
        positive_label="yes",
    )


def _build(params: dict[str, Any]) -> TVAESynthesizer:
    return TVAESynthesizer(
        SPEC.categorical_columns,
        SPEC.continuous_columns,
        params=TVAEParams(epochs=6, batch_size=100, learning_rate=params["learning_rate"]),
        seed=0,
    )


def test_a_hopeless_trial_is_pruned_and_the_best_params_come_back(tmp_path: Path) -> None:
    spec = TuningSpec(
        enabled=True,
        n_trials=3,
        n_workers=1,
        pruner="median",
        pruner_startup_trials=1,
        objective={"report_every": 2},
        # built to prune: a trained model first, then two that cannot learn
        enqueue=[{"learning_rate": 3e-3}, {"learning_rate": 1e-9}, {"learning_rate": 1e-9}],
        search_space={"learning_rate": ParamSpec(type="float", low=1e-9, high=1e-2, log=True)},
    )
    storage = f"journal://{tmp_path / 'study.journal'}"
    create_study(spec, storage, "toy")
    logged: list[tuple[int, str]] = []
    counts = run_worker(
        spec,
        storage,
        "toy",
        0,
        TabularObjective(_data(), spec),
        _build,
        lambda n, p, state, v, h: logged.append((n, state)),
    )
    assert counts["complete"] >= 1 and counts["pruned"] >= 1
    assert (0, "COMPLETE") in logged and (1, "PRUNED") in logged
    summary = summarize(spec, storage, "toy")
    assert summary.best_params == {"learning_rate": 3e-3}
    assert summary.states["PRUNED"] >= 1 and summary.n_trials == 3
    assert 0.0 < (summary.best_value or 0.0) <= 1.0


def test_a_storage_url_from_the_environment_travels_as_a_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genops.core.tuning.study import ENV_STORAGE, open_storage, resolve_storage

    secret = f"sqlite:///{tmp_path / 'optuna.db'}"  # stands in for postgresql://user:pw@...
    monkeypatch.setenv("OPTUNA_STORAGE_URL", secret)
    ref = resolve_storage(TuningSpec(enabled=True), "run1")
    assert ref == ENV_STORAGE and "optuna.db" not in ref
    assert open_storage(ref) is not None
    monkeypatch.delenv("OPTUNA_STORAGE_URL")
    with pytest.raises(RuntimeError, match="OPTUNA_STORAGE_URL, which is not set"):
        open_storage(ref)
    local = resolve_storage(TuningSpec(enabled=True), "run1")
    assert local.startswith("journal://") and local.endswith("run1.journal")
