"""Model registry aliases: ``challenger`` for every candidate, ``champion`` moved by promotion.

Aliases, not the deprecated stages. The registry itself keeps the history a rollback walks:

- the registered model's tag ``genops.champion_history`` holds the chain of champions,
  newest first, as a JSON list of version numbers: every move of ``champion`` (a promotion or
  a rollback) puts the new champion in front. It lives in the registry, so it survives the
  process, and it is capped at :data:`MAX_HISTORY` entries;
- a rollback tags the champion it leaves ``genops.rolled_back=true`` and restores the newest
  champion of the chain that is neither the current one nor tagged rolled back (nor
  deleted). Repeated rollbacks therefore walk back through the chain and never bounce
  between two versions, and a rolled-back version is never restored by a rollback. Promoting
  a version by hand clears its ``genops.rolled_back`` tag: a person chose it again;
- each promotion still records the champion it replaced in the new champion's tag
  ``genops.previous_champion``; a store written before the history tag existed has its chain
  rebuilt from those links.

Two promotions of one model at the same moment may race on the history tag (the last
write wins); the alias itself is always right.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_TAG = "genops.previous_champion"
HISTORY_TAG = "genops.champion_history"
ROLLED_BACK_TAG = "genops.rolled_back"
#: How many champions the history keeps (the registry's tag values hold 5,000 characters).
MAX_HISTORY = 200


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


def _version_tags(client: MlflowClient, name: str, version: str) -> dict[str, str] | None:
    """The version's tags, or None when the version does not exist (any more)."""
    try:
        return dict(client.get_model_version(name, version).tags or {})
    except MlflowException:
        return None


def _chain_from_links(client: MlflowClient, name: str, start: str | None) -> list[str]:
    """The chain of ``genops.previous_champion`` links from ``start`` (stores written
    before the history tag); a cycle (the old rollback could make one) ends it."""
    chain: list[str] = []
    current = start
    while current and current not in chain and len(chain) < MAX_HISTORY:
        chain.append(current)
        tags = _version_tags(client, name, current)
        current = (tags or {}).get(PREVIOUS_TAG) or None
    return chain


def champion_history(name: str, tracking_uri: str | None = None) -> list[str]:
    """The chain of champions of ``name``, newest first (see the module's docstring)."""
    client = _client(tracking_uri)
    try:
        raw = client.get_registered_model(name).tags.get(HISTORY_TAG)
    except MlflowException as exc:
        raise RegistryError(f"no registered model {name}") from exc
    if raw:
        try:
            history = json.loads(raw)
        except ValueError:
            history = None
        if isinstance(history, list) and all(isinstance(v, str) for v in history):
            return history
    return _chain_from_links(client, name, alias_version(name, CHAMPION))


def _record(client: MlflowClient, name: str, history: list[str], champion: str) -> None:
    chain = [champion, *history][:MAX_HISTORY]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(chain, separators=(",", ":")))


def promote(name: str, version: str, tracking_uri: str | None = None) -> AliasMove:
    """Point ``champion`` at ``version``, remembering the champion it replaces; a version
    rolled back earlier and promoted again loses its ``genops.rolled_back`` tag."""
    client = _client(tracking_uri)
    version = str(version)
    tags = _version_tags(client, name, version)
    if tags is None:
        raise RegistryError(f"{name} has no version {version}")
    history = champion_history(name)
    previous = alias_version(name, CHAMPION)
    if previous == version:
        if not history or history[0] != version:  # a champion set before the history
            _record(client, name, history, version)
        return AliasMove(name, CHAMPION, previous, version)
    client.set_model_version_tag(name, version, PREVIOUS_TAG, previous or "")
    if tags.get(ROLLED_BACK_TAG) == "true":
        client.delete_model_version_tag(name, version, ROLLED_BACK_TAG)
    # the alias first: a history entry must never name a version that did not become
    # champion (a rollback would restore it)
    client.set_registered_model_alias(name, CHAMPION, version)
    _record(client, name, history, version)
    return AliasMove(name, CHAMPION, previous, version)


def rollback_target(name: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """``(current champion, version a rollback restores)``; RegistryError when there is
    no champion or no earlier champion that may be restored."""
    client = _client(tracking_uri)
    current = alias_version(name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name} has no champion: nothing to roll back")
    history = champion_history(name)
    earlier = [v for v in dict.fromkeys(history) if v != current]
    skipped = []
    for version in earlier:
        tags = _version_tags(client, name, version)
        if tags is None:
            skipped.append(f"v{version} (deleted)")
        elif tags.get(ROLLED_BACK_TAG) == "true":
            skipped.append(f"v{version} (rolled back)")
        else:
            return current, version
    if not earlier:
        raise RegistryError(
            f"{name}@champion is v{current}, the first champion: there is no previous "
            "champion to roll back to"
        )
    raise RegistryError(
        f"{name}@champion is v{current}, and no earlier champion may be restored: "
        f"{', '.join(skipped)}"
    )


def rollback(name: str, tracking_uri: str | None = None) -> AliasMove:
    """Move ``champion`` back to the newest earlier champion that was not rolled back; the
    champion it leaves is tagged ``genops.rolled_back=true``."""
    client = _client(tracking_uri)
    current, target = rollback_target(name)
    history = champion_history(name)
    client.set_model_version_tag(name, current, ROLLED_BACK_TAG, "true")
    client.set_registered_model_alias(name, CHAMPION, target)
    _record(client, name, history, target)
    return AliasMove(name, CHAMPION, current, target)


def retire_champion(name: str, tracking_uri: str | None = None) -> str | None:
    """Remove ``champion`` when there is nothing to roll back to (the first champion failed
    its smoke test): the version is tagged rolled back, so no later rollback restores it.
    Returns the version that was champion."""
    client = _client(tracking_uri)
    current = alias_version(name, CHAMPION)
    if current is None:
        return None
    client.set_model_version_tag(name, current, ROLLED_BACK_TAG, "true")
    client.delete_registered_model_alias(name, CHAMPION)
    return current
