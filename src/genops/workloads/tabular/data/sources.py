"""Pre-flight checks of a dataset spec's sources, before any step starts: each local file
exists, is a file, can be read and has a header holding every column the spec names; an
``s3://`` object gets the same checks through ranged reads when credentials allow (else it is
"not checked: no credentials", a note, not a failure).

Only the first bytes are read (and a Parquet file's footer), so the checks are cheap on any
size of data.
"""

from __future__ import annotations

import bz2
import io
import zlib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import pandas as pd

from genops.core.io import DataLoadError, detect_format
from genops.core.workload import PreflightProblem
from genops.workloads.tabular.config import DatasetSpec

#: Bytes read from the start of a CSV source to find its header.
HEAD_BYTES = 1 << 16

Format = Literal["auto", "csv", "parquet"]


class SourceProblem(Exception):
    """A source that fails a pre-flight check; ``blocking`` False is a note."""

    def __init__(self, message: str, blocking: bool = True) -> None:
        super().__init__(message)
        self.blocking = blocking


def _kind(uri: str, fmt: Format) -> Literal["csv", "parquet"]:
    try:
        return detect_format(uri) if fmt == "auto" else fmt
    except DataLoadError as exc:
        raise SourceProblem(str(exc).removeprefix(f"{uri}: ")) from exc


def _csv_header(text: str) -> list[str]:
    first = text.splitlines()[0] if text.strip() else ""
    if not first.strip():
        raise SourceProblem("the file is empty (no header line)")
    try:
        frame = pd.read_csv(io.StringIO(first + "\n"), nrows=0, skipinitialspace=True)
    except Exception as exc:
        raise SourceProblem(f"cannot parse the header as CSV: {exc}") from exc
    return [str(c).strip() for c in frame.columns]


def _parquet_columns(names: list[str]) -> list[str]:
    """The columns pandas reads (a stored index is not one)."""
    return [str(c).strip() for c in names if not str(c).startswith("__index_level_")]


def _decompress_prefix(prefix: bytes, uri: str) -> bytes:
    name = uri.lower()
    try:
        if name.endswith(".gz"):
            return zlib.decompressobj(wbits=47).decompress(prefix)  # gzip or zlib header
        if name.endswith(".bz2"):
            return bz2.BZ2Decompressor().decompress(prefix)
    except (zlib.error, OSError) as exc:
        raise SourceProblem(f"cannot decompress: {exc}") from exc
    if name.endswith(".zip"):
        raise SourceProblem("header not checked: a zip archive", blocking=False)
    return prefix


def _local_header(path: Path, uri: str, kind: str) -> list[str]:
    try:
        path.stat()
    except FileNotFoundError as exc:
        raise SourceProblem("file not found") from exc
    except OSError as exc:  # a folder on the way that cannot be entered
        raise SourceProblem(f"cannot be read: {exc.strerror or exc}") from exc
    if path.is_dir():
        raise SourceProblem("is a folder, not a file")
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError as exc:
        raise SourceProblem(f"cannot be read: {exc.strerror or exc}") from exc
    if not head.strip():
        raise SourceProblem("the file is empty")
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            return _parquet_columns(pq.read_schema(path).names)
        except Exception as exc:
            raise SourceProblem(f"cannot read as Parquet: {exc}") from exc
    if uri.lower().endswith(".zip"):
        try:
            frame = pd.read_csv(path, nrows=0, skipinitialspace=True, compression="zip")
        except Exception as exc:
            raise SourceProblem(f"cannot parse the header as CSV: {exc}") from exc
        return [str(c).strip() for c in frame.columns]
    return _csv_header(_decompress_prefix(head, uri).decode("utf-8", errors="replace"))


def _s3_has_credentials() -> bool:
    import boto3

    return boto3.Session().get_credentials() is not None


def _s3_error(exc: Exception) -> SourceProblem:
    response: Any = getattr(exc, "response", None)
    code = str((response or {}).get("Error", {}).get("Code", ""))
    if code in ("404", "NoSuchKey", "NotFound"):
        return SourceProblem("object not found")
    if code == "NoSuchBucket":
        return SourceProblem("bucket not found")
    if code in ("403", "AccessDenied", "Forbidden"):
        return SourceProblem("access denied")
    return SourceProblem(f"cannot read from S3: {exc}")


def _s3_header(uri: str, kind: str) -> list[str]:
    from genops.core.io import _s3_client

    if not _s3_has_credentials():
        raise SourceProblem("not checked: no credentials", blocking=False)
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    client = _s3_client()
    try:
        size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except Exception as exc:
        raise _s3_error(exc) from exc
    if size == 0:
        raise SourceProblem("the file is empty")

    def ranged(start: int, end: int) -> bytes:
        try:
            body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")
        except Exception as exc:
            raise _s3_error(exc) from exc
        return bytes(body["Body"].read())

    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        tail = ranged(max(0, size - 8), size - 1)
        if len(tail) < 8 or tail[4:] != b"PAR1":
            raise SourceProblem("cannot read as Parquet: no Parquet footer")
        footer = int.from_bytes(tail[:4], "little")
        if footer + 8 > size:
            raise SourceProblem("cannot read as Parquet: a corrupt footer")
        buffer = b"PAR1" + ranged(size - 8 - footer, size - 1)
        try:
            return _parquet_columns(pq.read_schema(pa.BufferReader(buffer)).names)
        except Exception as exc:
            raise SourceProblem(f"cannot read as Parquet: {exc}") from exc
    head = ranged(0, min(size, HEAD_BYTES) - 1)
    return _csv_header(_decompress_prefix(head, uri).decode("utf-8", errors="replace"))


def read_header(uri: str, fmt: Format = "auto") -> list[str]:
    """The column names of one source (local path or ``s3://``), from its first bytes.

    Raises :class:`SourceProblem` naming what is wrong (``blocking`` False: not checked)."""
    kind = _kind(uri, fmt)
    if uri.startswith("s3://"):
        return _s3_header(uri, kind)
    if "://" in uri and not uri.startswith("file://"):
        raise SourceProblem("unsupported scheme (use a local path or s3://)")
    return _local_header(Path(uri.removeprefix("file://")), uri, kind)


def check_sources(spec: DatasetSpec) -> list[PreflightProblem]:
    """Every source exists, is readable, and its header holds every column the spec names."""
    problems: list[PreflightProblem] = []
    required = spec.required_columns
    for uri in spec.sources:
        try:
            header = read_header(uri, spec.format)
        except SourceProblem as exc:
            problems.append(PreflightProblem(uri, str(exc), blocking=exc.blocking))
            continue
        missing = [c for c in required if c not in header]
        if missing:
            shown = header if len(header) <= 30 else [*header[:30], "..."]
            problems.append(
                PreflightProblem(
                    uri,
                    f"the header lacks column(s) {missing}: every column the spec names "
                    f"(columns, target, sensitive_attributes, value_map) must be in each "
                    f"source; the header has {shown}",
                )
            )
    return problems
