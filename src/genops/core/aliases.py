"""Model registry aliases: ``challenger`` for every candidate, ``champion`` moved by promotion.

Aliases, not the deprecated stages. Each promotion records the champion it replaced in the
new champion's tag ``genops.previous_champion``, so a rollback knows where to go back to.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_TAG = "genops.previous_champion"


class RegistryError(RuntimeError):
    """A registry operation that cannot be done; the message says why."""


@dataclass(frozen=True)
class AliasMove:
    model: str
    alias: str
    from_version: str | None
    to_version: str

    def describe(self) -> str:
        before = f"v{self.from_version}" if self.from_version else "none"
        return f"{self.model}@{self.alias}: {before} -> v{self.to_version}"


def _client(tracking_uri: str | None) -> MlflowClient:
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    return MlflowClient()


def alias_version(name: str, alias: str, tracking_uri: str | None = None) -> str | None:
    """The version behind ``name@alias``, or None when the alias is not set."""
    try:
        return str(_client(tracking_uri).get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def champion_metrics(
    name: str, tracking_uri: str | None = None
) -> tuple[str | None, dict[str, float] | None]:
    """The champion's version and the metrics of the pipeline run that produced it."""
    client = _client(tracking_uri)
    version = alias_version(name, CHAMPION)
    if version is None:
        return None, None
    mv = client.get_model_version(name, version)
    run_id = mv.tags.get("genops.pipeline_run_id") or mv.run_id
    if not run_id:
        return version, {}
    return version, dict(client.get_run(run_id).data.metrics)


def promote(name: str, version: str, tracking_uri: str | None = None) -> AliasMove:
    """Point ``champion`` at ``version``, remembering the champion it replaces."""
    client = _client(tracking_uri)
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"{name} has no version {version}") from exc
    previous = alias_version(name, CHAMPION)
    if previous == str(version):
        return AliasMove(name, CHAMPION, previous, str(version))
    # the tag first: a rollback must never mistake a promoted version for the first champion
    client.set_model_version_tag(name, str(version), PREVIOUS_TAG, previous or "")
    client.set_registered_model_alias(name, CHAMPION, str(version))
    return AliasMove(name, CHAMPION, previous, str(version))


def rollback(name: str, tracking_uri: str | None = None) -> AliasMove:
    """Move ``champion`` back to the version it replaced."""
    client = _client(tracking_uri)
    current = alias_version(name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name} has no champion: nothing to roll back")
    previous = client.get_model_version(name, current).tags.get(PREVIOUS_TAG, "")
    if not previous:
        raise RegistryError(
            f"{name}@champion is v{current}, the first champion: there is no previous "
            "champion to roll back to"
        )
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_model_version_tag(name, current, "genops.rolled_back", "true")
    return AliasMove(name, CHAMPION, current, previous)
