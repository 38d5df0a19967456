"""The tuning settings and search space, as they are written in the run config's YAML.

```yaml
tuning:
  enabled: true
  n_trials: 6
  n_workers: 2
  trial_epochs: 20      # budget per trial
  min_completed_trials: 1   # fewer completed trials fail the run (lost workers, failures)
  sampler: tpe          # tpe | random
  pruner: median        # median | hyperband | none
  search_space:
    family: {type: categorical, choices: [tvae, ctgan]}
    learning_rate: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
    epochs: {type: int, low: 10, high: 40, step: 10}
```

Parameter names are :class:`genops.core.config.ModelSpec` fields; a name prefixed with a family
(``ctgan.generator_lr``) is suggested only when that family was drawn.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ParamSpec(BaseModel):
    """One dimension of the search space."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["categorical", "int", "float"]
    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"a {self.type} parameter needs low <= high")
        return self


class ObjectiveSpec(BaseModel):
    """Score = weighted mean of fidelity and utility on the validation split. Tabular:
    fidelity quality and TSTR AUC. Images: the share of conditional samples the domain
    classifier reads as the class asked for, and CAS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fidelity_weight: float = Field(0.5, ge=0)
    utility_weight: float = Field(0.5, ge=0)
    report_every: int = Field(5, gt=0, description="Epochs between intermediate scores.")

    @model_validator(mode="after")
    def _check(self) -> ObjectiveSpec:
        if self.fidelity_weight + self.utility_weight <= 0:
            raise ValueError("at least one objective weight must be positive")
        return self


class TuningSpec(BaseModel):
    """Hyperparameter search with Optuna, run as N parallel pipeline workers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    n_trials: int = Field(6, gt=0)
    n_workers: int = Field(2, gt=0, le=32)
    timeout_s: float | None = Field(None, gt=0, description="Per worker, in seconds.")
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    pruner_startup_trials: int = Field(2, ge=0)
    min_completed_trials: int = Field(
        1,
        ge=0,
        description="The run fails when fewer trials than this completed (a worker that "
        "dies loses only its running trial; the summary uses every completed one).",
    )
    seed: int = 0
    trial_epochs: int | None = Field(
        None,
        gt=0,
        description="Epochs per trial (the budget); None: the model's epochs. The final "
        "train step uses the model's epochs unless 'epochs' is in the search space.",
    )
    storage: str | None = Field(
        None,
        description="Optuna storage URL. Default: $OPTUNA_STORAGE_URL (the cluster's "
        "PostgreSQL) or a journal file under $GENOPS_HOME/optuna (local).",
    )
    objective: ObjectiveSpec = Field(default_factory=lambda: ObjectiveSpec())
    enqueue: list[dict[str, Any]] = Field(
        default_factory=list, description="Trials to evaluate first (known-good settings)."
    )
    search_space: dict[str, ParamSpec] = Field(
        default_factory=lambda: {
            "learning_rate": ParamSpec(type="float", low=3e-4, high=3e-3, log=True),
            "embedding_dim": ParamSpec(type="categorical", choices=[64, 128]),
        }
    )

    @model_validator(mode="after")
    def _enough_trials(self) -> TuningSpec:
        if self.min_completed_trials > self.n_trials:
            raise ValueError(
                f"min_completed_trials ({self.min_completed_trials}) is more than n_trials "
                f"({self.n_trials})"
            )
        return self

    @model_validator(mode="after")
    def _no_secret_in_storage(self) -> TuningSpec:
        from urllib.parse import urlparse

        if self.storage and "://" in self.storage and urlparse(self.storage).password:
            raise ValueError(
                "tuning.storage must not hold a password (it would travel in artifacts and "
                "MLflow): set OPTUNA_STORAGE_URL in the environment, or write env:NAME"
            )
        return self

    def trials_for_worker(self, worker: int) -> int:
        """Trials split as evenly as possible; the first workers take the remainder."""
        base, extra = divmod(self.n_trials, self.n_workers)
        return base + (1 if worker < extra else 0)


def suggest(trial: Any, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Draw one point of ``space`` with an Optuna trial; returns ModelSpec overrides."""
    params: dict[str, Any] = {}
    family = None
    if "family" in space:
        family = trial.suggest_categorical("family", space["family"].choices)
        params["family"] = family
    for name, p in space.items():
        if name == "family":
            continue
        key = name
        if "." in name:
            prefix, key = name.split(".", 1)
            if family is not None and prefix != family:
                continue
        if p.type == "categorical":
            value = trial.suggest_categorical(name, p.choices)
        elif p.type == "int":
            value = trial.suggest_int(
                name, int(p.low or 0), int(p.high or 0), step=int(p.step or 1), log=p.log
            )
        else:
            value = trial.suggest_float(name, float(p.low or 0), float(p.high or 0), log=p.log)
        params[key] = value
    return params
