"""Run configuration, read from YAML: loading, ``base:`` chains, validation by the workload.

One YAML file describes a run of one pipeline: which data, which model, the gates and the
release settings. Its top-level ``pipeline`` key names the workload (see
:mod:`genops.core.workload`) whose typed model validates it; a file without the key belongs
to the default workload. A file may name a ``base:`` file (relative to itself) whose values it
overrides key by key, so a fast test config is a few lines on top of the real one. Source
paths under ``dataset`` (``source`` or ``sources``) are made absolute, relative to the file.

Validation happens here, before any step runs: a bad spec fails with the field's dotted path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from genops.core.tuning.space import TuningSpec
from genops.core.workload import (
    PreflightProblem,
    Resolution,
    RunConfig,
    WorkloadError,
    default_workload,
    get_workload,
)


class ConfigError(ValueError):
    """A configuration file that cannot be read or does not match the schema."""


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def lay_section_defaults(data: Any, defaults: Mapping[str, Mapping[str, Any]]) -> Any:
    """A workload's defaults for shared sections (``blessing``, ``tuning``) under the keys
    a config gives: a partial section keeps the workload's defaults, not the core's."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for key, section in defaults.items():
        if isinstance(out.get(key), dict):
            out[key] = {**section, **out[key]}
    return out


def check_search_space(tuning: TuningSpec, model_fields: set[str]) -> None:
    """Every tuned key is a model parameter, every enqueued key is tuned."""
    for key in tuning.search_space:
        if key.split(".", 1)[-1] not in model_fields:
            raise ValueError(f"tuning.search_space: '{key}' is not a model parameter")
    for params in tuning.enqueue:
        for key in params:
            if key not in tuning.search_space:
                # Optuna only hands back enqueued values of suggested parameters
                raise ValueError(f"tuning.enqueue: '{key}' is not in tuning.search_space")


def _is_uri(source: str) -> bool:
    """``s3://...``, ``sklearn:digits``: a source that is not a local path."""
    return "://" in source or re.match(r"^[a-z][a-z0-9+.-]+:(?![\\/])", source) is not None


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def yaml_error_message(origin: str, exc: yaml.YAMLError) -> str:
    """A YAML syntax error as ``file, line L, column C: not valid YAML: problem``, with the
    offending line and a caret (PyYAML's own message names ``<unicode string>``)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"{origin}: not valid YAML: {problem}"
    text = f"{origin}, line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {problem}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        text += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    elif context:
        text += f" ({context})"
    snippet = mark.get_snippet()
    return text + (f"\n{snippet}" if snippet else "")


def _read_yaml_dict(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a folder, not a config file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error_message(str(path), exc)) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _resolve_sources(raw: dict[str, Any], spec_dir: Path) -> None:
    dataset = raw.get("dataset")
    if not isinstance(dataset, dict):
        return  # validation names the problem
    source = dataset.get("source")  # image data sets name one source
    if isinstance(source, str) and not _is_uri(source) and not Path(source).is_absolute():
        raw["dataset"]["source"] = str((spec_dir / source).resolve())
    sources = raw.get("dataset", {}).get("sources")
    if isinstance(sources, list):
        raw["dataset"]["sources"] = [
            s
            if _is_uri(str(s)) or Path(str(s)).is_absolute()
            else str((spec_dir / str(s)).resolve())
            for s in sources
        ]


def load_raw_config(path: str | Path) -> dict[str, Any]:
    """Read a config file, apply its ``base:`` chain and make source paths absolute."""
    path = Path(path).resolve()
    raw = _read_yaml_dict(path)
    _resolve_sources(raw, path.parent)
    base = raw.pop("base", None)
    if base is not None:
        base_raw = load_raw_config(path.parent / str(base))
        raw = _deep_merge(base_raw, raw)
    return raw


def _config_error(origin: str, exc: ValidationError) -> ConfigError:
    lines = [
        f"  {'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors()
    ]
    return ConfigError(f"{origin}: invalid configuration\n" + "\n".join(lines))


def parse_config(raw: Mapping[str, Any], origin: str = "<config>") -> RunConfig:
    """Validate a raw mapping with the workload its ``pipeline`` key names; errors name the
    field's dotted path."""
    try:
        name = str(raw.get("pipeline") or default_workload())
        workload = get_workload(name)
    except WorkloadError as exc:
        raise ConfigError(f"{origin}: invalid configuration\n  pipeline: {exc}") from exc
    try:
        return workload.parse_config(raw)
    except ValidationError as exc:
        raise _config_error(origin, exc) from exc


def load_config(path: str | Path) -> RunConfig:
    """Read, merge and validate a run configuration file of any workload."""
    return parse_config(load_raw_config(path), origin=str(path))


def load_config_for(path: str | Path, pipeline: str) -> RunConfig:
    """:func:`load_config`, refusing a config written for another pipeline."""
    config = load_config(path)
    if config.pipeline_name != pipeline:
        raise ConfigError(
            f"{path} is a '{config.pipeline_name}' config (its 'pipeline' key), "
            f"not one for '{pipeline}'"
        )
    return config


def preflight(config: RunConfig) -> list[PreflightProblem]:
    """The workload's checks before any step starts (sources exist, can be read, hold the
    columns the config names); problems with ``blocking`` False are notes."""
    return get_workload(config.pipeline_name).preflight(config)


def resolve_config(config: RunConfig) -> Resolution:
    """The config with what it leaves to the data filled in by its workload (the tabular
    workload infers the columns a spec does not list)."""
    return get_workload(config.pipeline_name).resolve_config(config)


def read_config_artifact(path: str | Path) -> RunConfig:
    """Read the resolved config artifact the start step writes (any workload)."""
    return parse_config(yaml.safe_load(Path(path).read_text()), origin=str(path))


def dump_config(config: BaseModel | RunConfig) -> str:
    """The resolved configuration as YAML (what a run actually used)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
