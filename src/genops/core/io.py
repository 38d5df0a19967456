"""Reading tables from local paths or ``s3://`` URIs, and hashing their content."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import pandas as pd


class DataLoadError(ValueError):
    """A source that cannot be read as a table."""


def _s3_client():  # type: ignore[no-untyped-def]
    import os

    import boto3

    # AWS_ENDPOINT_URL is honoured by boto3 itself; GENOPS_S3_ENDPOINT_URL wins when set.
    endpoint = os.environ.get("GENOPS_S3_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint) if endpoint else boto3.client("s3")


def read_bytes(uri: str) -> bytes:
    """The raw bytes of a local file or an ``s3://bucket/key`` object."""
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        try:
            obj = _s3_client().get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
        except Exception as exc:  # botocore raises many kinds; the message is what matters
            raise DataLoadError(f"{uri}: cannot read from S3: {exc}") from exc
        return bytes(obj["Body"].read())
    if "://" in uri and not uri.startswith("file://"):
        raise DataLoadError(f"{uri}: unsupported scheme (use a local path or s3://)")
    path = Path(uri.removeprefix("file://"))
    if not path.is_file():
        raise DataLoadError(f"{uri}: file not found")
    return path.read_bytes()


def detect_format(uri: str) -> Literal["csv", "parquet"]:
    name = uri.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".txt", ".txt.gz")):
        return "csv"
    raise DataLoadError(f"{uri}: cannot tell the format from the name; set dataset.format")


def read_table(
    uri: str, fmt: Literal["auto", "csv", "parquet"] = "auto", na_values: list[str] | None = None
) -> pd.DataFrame:
    """Read one CSV or Parquet source. Missing-value markers become NaN.

    Every column is read as it is in the file (no type coercion): type checks belong to
    validation, which must see a string in a numeric column to report it.
    """
    kind = detect_format(uri) if fmt == "auto" else fmt
    raw = read_bytes(uri)
    if not raw.strip():
        raise DataLoadError(f"{uri}: the file is empty")
    try:
        if kind == "parquet":
            frame = pd.read_parquet(io.BytesIO(raw))
            if na_values:
                frame = frame.replace({v: pd.NA for v in na_values})
        else:
            compression = "infer"
            suffix = uri.lower()
            if suffix.endswith(".gz"):
                compression = "gzip"
            elif suffix.endswith(".bz2"):
                compression = "bz2"
            elif suffix.endswith(".zip"):
                compression = "zip"
            frame = pd.read_csv(
                io.BytesIO(raw),
                compression=compression,
                na_values=na_values or [],
                keep_default_na=False,
                skipinitialspace=True,
            )
    except DataLoadError:
        raise
    except Exception as exc:
        raise DataLoadError(f"{uri}: cannot parse as {kind}: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def content_hash(frame: pd.DataFrame) -> str:
    """A stable SHA-256 of a frame's columns, dtypes and values (order-sensitive)."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(",".join(str(t) for t in frame.dtypes).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a reader never sees
    half a file, and a failed write leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
