"""Generation at scale: N synthetic rows from a registered synthesizer, written as K Parquet
shards to a local folder or an ``s3://`` prefix.

The pieces are the same whether one machine writes the shards (``genops generate``, a pool
of processes) or a KFP ``ParallelFor`` spreads them over the cluster's nodes
(``pipelines/tabular_generate.py``):

- :func:`plan_shards` splits N rows into K shards, each with its own seed drawn from one
  ``numpy.random.SeedSequence``: the same (N, K, seed) gives the same rows, whoever writes
  which shard and in which order;
- :func:`write_shard` samples one shard in chunks (memory stays flat whatever N is), writes
  it to a temporary file, checks it (row count, schema) and only then gives it its final
  name ``part-<i>-of-<K>.parquet``: a reader never sees half a shard;
- :func:`check_release` reads every shard's footer back from the destination (row count and
  schema, against the plan) and :func:`write_manifest` writes ``_manifest.json`` last: a
  release without a manifest is not a release.

A destination that already holds shards or a manifest is refused unless ``overwrite`` is
given, so nothing is lost; a failed release removes the shards it wrote and writes no
manifest.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "MANIFEST",
    "Destination",
    "GenerationError",
    "ShardPlan",
    "ShardResult",
    "arrow_schema",
    "check_release",
    "plan_shards",
    "prepare_destination",
    "write_manifest",
    "write_shard",
]

MANIFEST = "_manifest.json"
SHARD_PREFIX = "part-"
#: Rows sampled and written per step inside one shard: bounds a worker's memory.
DEFAULT_CHUNK_ROWS = 250_000
MAX_SHARDS = 10_000
_ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "str": pa.string()}


class Sampler(Protocol):
    """What a release needs of a synthesizer (every family of ``models`` has it)."""

    @property
    def columns(self) -> list[str]: ...

    @property
    def dtypes(self) -> dict[str, str]: ...

    @property
    def categories(self) -> dict[str, list[str]]: ...

    def sample(
        self, n: int, conditions: dict[str, str] | None = None, seed: int | None = None
    ) -> pd.DataFrame: ...


class GenerationError(ValueError):
    """A release that cannot be planned, written or checked; the message names the shard (or
    the argument) and the rule."""


@dataclass(frozen=True)
class ShardPlan:
    """One shard: its position, its row count and its seed."""

    index: int
    count: int
    rows: int
    seed: int

    @property
    def name(self) -> str:
        return f"{SHARD_PREFIX}{self.index:05d}-of-{self.count:05d}.parquet"

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ShardPlan:
        try:
            return cls(**{k: int(values[k]) for k in ("index", "count", "rows", "seed")})
        except (KeyError, TypeError, ValueError) as exc:
            raise GenerationError(f"shard plan {dict(values)!r}: {exc}") from exc


@dataclass(frozen=True)
class ShardResult:
    """What writing one shard produced."""

    index: int
    name: str
    rows: int
    bytes: int
    seed: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_shards(rows: int, shards: int, seed: int = 0) -> list[ShardPlan]:
    """``rows`` split over ``shards`` (sizes differ by at most one), seeds from one
    ``SeedSequence(seed)``."""
    for name, value in (("rows", rows), ("shards", shards), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise GenerationError(f"{name}: expected an integer, got {value!r}")
    if rows < 1:
        raise GenerationError(f"rows: must be at least 1, got {rows}")
    if not 1 <= shards <= MAX_SHARDS:
        raise GenerationError(f"shards: must be between 1 and {MAX_SHARDS}, got {shards}")
    if shards > rows:
        raise GenerationError(f"shards: {shards} shards for {rows} rows leaves some empty")
    if seed < 0:
        raise GenerationError(f"seed: must be non-negative, got {seed}")
    base, extra = divmod(int(rows), int(shards))
    children = np.random.SeedSequence(int(seed)).spawn(int(shards))
    return [
        ShardPlan(
            index=i,
            count=int(shards),
            rows=base + (1 if i < extra else 0),
            seed=_seed_of(child),
        )
        for i, child in enumerate(children)
    ]


def arrow_schema(columns: Sequence[str], dtypes: Mapping[str, str]) -> pa.Schema:
    """The shards' schema: the synthesizer's columns in order, ``int64``/``float64``/string."""
    fields = []
    for column in columns:
        kind = dtypes.get(column)
        if kind not in _ARROW_TYPES:
            raise GenerationError(f"column '{column}': no Parquet type for dtype {kind!r}")
        fields.append(pa.field(column, _ARROW_TYPES[kind], nullable=False))
    return pa.schema(fields)


def _seed_of(sequence: np.random.SeedSequence) -> int:
    """53 bits: a seed survives JSON as a double (KFP passes a ParallelFor item through a
    protobuf Struct, whose numbers are doubles), so a shard gets the same seed on the
    cluster as in ``genops generate``."""
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(11))


def _chunk_seeds(seed: int, chunks: int) -> list[int]:
    return [_seed_of(s) for s in np.random.SeedSequence(seed).spawn(chunks)]


def _describe_schema(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name}:{f.type}" for f in schema)


class Destination:
    """A local folder or an ``s3://bucket/prefix``: put, read back, list and delete files."""

    def __init__(self, uri: str) -> None:
        if not uri or not isinstance(uri, str):
            raise GenerationError(f"destination: expected a folder or s3:// prefix, got {uri!r}")
        self.uri = uri.rstrip("/")
        self.is_s3 = uri.startswith("s3://")
        if self.is_s3:
            parsed = urlparse(self.uri)
            if not parsed.netloc:
                raise GenerationError(f"destination {uri}: no bucket in the s3:// URI")
            self.bucket = parsed.netloc
            self.prefix = parsed.path.strip("/")
        elif "://" in uri and not uri.startswith("file://"):
            raise GenerationError(f"destination {uri}: unsupported scheme (a folder or s3://)")
        else:
            self.path = Path(uri.removeprefix("file://")).expanduser()
            if self.path.exists() and not self.path.is_dir():
                raise GenerationError(f"destination {uri}: exists and is not a folder")

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _client(self) -> Any:
        from genops.core.io import _s3_client

        return _s3_client()

    def join(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def names(self) -> list[str]:
        """The files directly under the destination."""
        if not self.is_s3:
            if not self.path.is_dir():
                return []
            return sorted(p.name for p in self.path.iterdir() if p.is_file())
        client, found = self._client(), []
        prefix = f"{self.prefix}/" if self.prefix else ""
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        ):
            found += [obj["Key"][len(prefix) :] for obj in page.get("Contents", [])]
        return sorted(found)

    def staging_file(self, name: str) -> Path:
        """Where to write ``name`` before :meth:`put`: beside it locally (so the rename is
        atomic), in the temporary folder for S3."""
        if self.is_s3:
            handle, path = tempfile.mkstemp(prefix=".genops-", suffix=f"-{name}")
            os.close(handle)
            return Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path / f".{name}.tmp-{os.getpid()}"

    def put(self, staged: Path, name: str) -> None:
        if self.is_s3:
            try:
                self._client().upload_file(str(staged), self.bucket, self._key(name))
            finally:
                staged.unlink(missing_ok=True)
        else:
            staged.replace(self.path / name)

    def put_text(self, text: str, name: str) -> None:
        if self.is_s3:
            self._client().put_object(
                Bucket=self.bucket, Key=self._key(name), Body=text.encode("utf-8")
            )
        else:
            from genops.core.io import write_text_atomic

            write_text_atomic(self.path / name, text)

    def delete(self, names: Iterable[str]) -> None:
        for name in names:
            if self.is_s3:
                self._client().delete_object(Bucket=self.bucket, Key=self._key(name))
            else:
                (self.path / name).unlink(missing_ok=True)

    def delete_staged(self, names: Iterable[str]) -> None:
        """Remove what a writer of ``names`` left staged here and could not remove itself (a
        process killed outright). S3 stages in the temporary folder, not at the prefix."""
        if self.is_s3 or not self.path.is_dir():
            return
        for name in names:
            for staged in self.path.glob(f".{name}.tmp-*"):
                staged.unlink(missing_ok=True)

    def parquet_metadata(self, name: str) -> pq.FileMetaData:
        """The footer of a Parquet file at the destination (for S3, only its last bytes are
        read: the footer length and the footer)."""
        if not self.is_s3:
            return pq.read_metadata(self.path / name)
        client, key = self._client(), self._key(name)
        tail = client.get_object(Bucket=self.bucket, Key=key, Range="bytes=-8")["Body"].read()
        if len(tail) != 8 or tail[4:] != b"PAR1":
            raise GenerationError(f"{self.join(name)}: not a Parquet file (no PAR1 footer)")
        length = int.from_bytes(tail[:4], "little")
        footer = client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=-{length + 8}")
        return pq.read_metadata(io.BytesIO(b"PAR1" + footer["Body"].read()))


def prepare_destination(destination: str, overwrite: bool = False) -> Destination:
    """Refuse a destination that holds a release (shards or a manifest) unless
    ``overwrite``; with it, remove them first."""
    dest = Destination(destination)
    existing = [n for n in dest.names() if n == MANIFEST or n.startswith(SHARD_PREFIX)]
    if existing and not overwrite:
        shown = ", ".join(existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise GenerationError(
            f"destination {dest.uri}: already holds {len(existing)} release file(s) "
            f"({shown}); choose another destination, or overwrite it (--overwrite)"
        )
    if existing:
        dest.delete([n for n in existing if n == MANIFEST])  # not a release any more, first
        dest.delete([n for n in existing if n != MANIFEST])
    return dest


def check_shard(metadata: pq.FileMetaData, plan: ShardPlan, schema: pa.Schema, where: str) -> None:
    """Row count and schema of one written shard against its plan."""
    if metadata.num_rows != plan.rows:
        raise GenerationError(
            f"{where}: row count: holds {metadata.num_rows} rows, the plan says {plan.rows}"
        )
    written = metadata.schema.to_arrow_schema().remove_metadata()
    if not written.equals(schema.remove_metadata()):
        raise GenerationError(
            f"{where}: schema: holds ({_describe_schema(written)}), expected "
            f"({_describe_schema(schema)})"
        )


def write_shard(
    synthesizer: Sampler,
    plan: ShardPlan,
    destination: str,
    *,
    conditions: Mapping[str, str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_rows: Callable[[int], None] | None = None,
) -> ShardResult:
    """Sample shard ``plan`` in chunks of ``chunk_rows``, write it, check it, then publish it
    under its final name. ``on_rows`` is told each chunk's row count (a progress bar)."""
    started = time.perf_counter()
    dest = Destination(destination)
    columns = list(synthesizer.columns)
    schema = arrow_schema(columns, synthesizer.dtypes)
    chunks = -(-plan.rows // chunk_rows)
    staged = dest.staging_file(plan.name)
    try:
        with pq.ParquetWriter(staged, schema, compression="zstd") as writer:
            remaining = plan.rows
            for seed in _chunk_seeds(plan.seed, chunks):
                n = min(chunk_rows, remaining)
                frame = synthesizer.sample(n, conditions=dict(conditions or {}) or None, seed=seed)
                table = pa.Table.from_pandas(frame[columns], schema=schema, preserve_index=False)
                writer.write_table(table)
                remaining -= n
                if on_rows is not None:
                    on_rows(n)
        check_shard(pq.read_metadata(staged), plan, schema, f"shard {plan.name}")
        size = staged.stat().st_size
        dest.put(staged, plan.name)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return ShardResult(
        plan.index, plan.name, plan.rows, size, plan.seed, time.perf_counter() - started
    )


def check_release(
    destination: str, plans: Sequence[ShardPlan], schema: pa.Schema
) -> list[dict[str, Any]]:
    """Read every planned shard's footer back from the destination; raises
    :class:`GenerationError` naming each missing or wrong shard. Returns each shard's name,
    rows and row groups."""
    dest = Destination(destination)
    present = set(dest.names())
    problems, checked = [], []
    for plan in plans:
        where = dest.join(plan.name)
        if plan.name not in present:
            problems.append(f"{where}: missing")
            continue
        try:
            metadata = dest.parquet_metadata(plan.name)
            check_shard(metadata, plan, schema, where)
        except GenerationError as exc:
            problems.append(str(exc))
            continue
        except Exception as exc:  # an unreadable footer: pyarrow's message says why
            problems.append(f"{where}: unreadable: {exc}")
            continue
        checked.append(
            {"name": plan.name, "rows": plan.rows, "row_groups": metadata.num_row_groups}
        )
    strays = sorted(
        n for n in present if n.startswith(SHARD_PREFIX) and n not in {p.name for p in plans}
    )
    problems += [f"{dest.join(n)}: not in the plan" for n in strays]
    if problems:
        raise GenerationError(
            f"release at {dest.uri} failed its check ({len(problems)} problem(s)): "
            + "; ".join(problems)
        )
    return checked


@dataclass
class Manifest:
    """``_manifest.json``: what was released, from which model, and how to read it back."""

    destination: str
    model: str
    rows: int
    shards: int
    seed: int
    schema: list[dict[str, str]]
    files: list[dict[str, Any]]
    conditions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    created: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def write_manifest(destination: str, manifest: Manifest) -> None:
    """Written last: its presence is what says the release is complete."""
    Destination(destination).put_text(manifest.to_json(), MANIFEST)


def schema_listing(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]
