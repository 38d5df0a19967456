"""The text corpus: its spec, reading (WikiText, a folder of ``.txt`` files, JSON lines, CSV or
Parquet; local or ``s3://``), and the checks before training: exact and near-duplicate
documents, personal data (e-mail addresses, phone and card numbers) and train/holdout overlap.

Reading collects every problem (encoding errors, empty or over-long documents, malformed
records) with the file and line where it is, the rule it breaks and the value found, and raises
one :class:`CorpusError` listing them all. The checks return a :class:`CorpusReport` whose
``verdict`` is a core :class:`~genops.core.verdict.BiasVerdict` (check ``"data"``), so the
core's report and recording functions work on it.

Documents with fewer words than ``checks.shingle_words`` (WikiText headings such as
``= = History = =``, a lone ``<unk>``) are too short to judge: they are counted, but neither
their exact nor their near duplicates nor their presence in train count against the gates.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import html
import io
import json
import math
import re
import unicodedata
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np
from pydantic import Field, model_validator

from genops.core.config import Strict
from genops.core.report import render_html, render_markdown
from genops.core.verdict import BiasPolicy, BiasVerdict, MetricResult, make_result
from genops.workloads.text.documents import Document

SPLITS: tuple[str, ...] = ("train", "validation", "test")
"""The splits :func:`read_corpus` returns, in this order."""

CorpusFormat = Literal["auto", "wikitext", "txt", "jsonl", "csv", "parquet"]

# WikiText's file stem of each split (``valid``, not ``validation``)
_WIKITEXT_STEMS = {"train": "train", "validation": "valid", "test": "test"}
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "txt": (".txt", ".txt.gz"),
    "jsonl": (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz"),
    "csv": (".csv", ".csv.gz"),
    "parquet": (".parquet", ".pq"),
}
_MAX_SHOWN = 50  # problems listed in a CorpusError's message (all are in .problems)
_MAX_FINDINGS = 20  # findings listed per rule (the rest are counted)
_MAX_PII_EXAMPLES = 5  # masked examples per kind of personal data

PiiKind = Literal["email", "phone", "card"]
PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "card")
_VERDICT_POLICY: dict[str, BiasPolicy] = {"block": "block", "warn": "warn", "redact": "mitigate"}
_PII_TOKENS: dict[str, str] = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]"}


# ---------------------------------------------------------------- specs


class TextSplitSpec(Strict):
    """Document-level split of a corpus without splits of its own (all but WikiText)."""

    validation: float = Field(0.1, ge=0.0, lt=1.0)
    test: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> TextSplitSpec:
        if self.validation + self.test >= 1.0:
            raise ValueError(
                f"validation ({self.validation}) + test ({self.test}) must leave documents "
                "for training (sum below 1)"
            )
        return self


class TextSourceSpec(Strict):
    """The ``dataset`` section of a text run config: where the corpus is and how to read it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Used in model names.")
    source: str = Field(
        description="A folder or a file, local (made absolute by config loading) or s3://."
    )
    format: CorpusFormat = Field(
        "auto",
        description="'auto': wikitext when the folder holds train.txt(.gz), else by the files' "
        "extension (.txt, .jsonl, .csv, .parquet).",
    )
    text_field: str = Field("text", min_length=1, description="JSON field or table column.")
    split: TextSplitSpec = Field(default_factory=lambda: TextSplitSpec())
    max_documents: int | None = Field(
        None, gt=0, description="A seeded sample of at most this many training documents."
    )
    max_chars: int = Field(200_000, gt=0, description="A longer document is an error.")
    min_chars: int = Field(
        1,
        ge=1,
        description="A document shorter than this after stripping is an empty-document error "
        "(WikiText's blank lines separate paragraphs and are no documents).",
    )

    @model_validator(mode="after")
    def _check(self) -> TextSourceSpec:
        if self.min_chars > self.max_chars:
            raise ValueError(
                f"min_chars ({self.min_chars}) is above max_chars ({self.max_chars}): "
                "every document would fail"
            )
        return self


class CorpusChecksSpec(Strict):
    """The ``checks`` section: the gates on the corpus before training."""

    near_duplicate_threshold: float = Field(
        0.9, gt=0.0, lt=1.0, description="MinHash estimate of the word-shingle Jaccard."
    )
    max_duplicate_share: float = Field(
        0.05, ge=0.0, le=1.0, description="Exact + near duplicate share of train; above fails."
    )
    pii_policy: Literal["block", "warn", "redact"] = Field(
        "warn",
        description="What personal data does: block stops the run, warn goes on with a "
        "failed verdict, redact replaces it with [EMAIL] / [PHONE] / [CARD] and goes on.",
    )
    max_overlap_share: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="Share of validation / test documents also in train (exact); above fails.",
    )
    minhash_permutations: int = Field(64, ge=8, le=1024)
    shingle_words: int = Field(
        5,
        ge=1,
        description="Words per shingle; shorter documents are not checked for duplicates.",
    )


# ---------------------------------------------------------------- errors


class CorpusError(ValueError):
    """A corpus that cannot be read. ``problems`` holds every problem found, one line each,
    naming the file and line, the rule and the value; the message lists them (the first
    :data:`_MAX_SHOWN`)."""

    def __init__(self, message: str, problems: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems) if problems is not None else [message]

    @classmethod
    def from_problems(cls, origin: str, problems: Sequence[str]) -> CorpusError:
        if len(problems) == 1:
            return cls(problems[0], problems)
        shown = list(problems[:_MAX_SHOWN])
        more = (
            f"\n  ... and {len(problems) - _MAX_SHOWN} more" if len(problems) > _MAX_SHOWN else ""
        )
        return cls(f"{origin}: {len(problems)} problems:\n  " + "\n  ".join(shown) + more, problems)


# ---------------------------------------------------------------- files, local or s3


def _is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def _join(root: str, name: str) -> str:
    if _is_s3(root):
        return root.rstrip("/") + "/" + name
    return str(Path(root) / name)


def _name_of(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1].lower()


def _has_suffix(uri: str, suffixes: Sequence[str]) -> bool:
    return _name_of(uri).endswith(tuple(suffixes))


def _list_s3(root: str) -> list[str]:
    import os

    import boto3

    parsed = urlparse(root)
    prefix = parsed.path.lstrip("/").rstrip("/")
    prefix = prefix + "/" if prefix else ""
    # the same endpoint rule as genops.core.io (GENOPS_S3_ENDPOINT_URL wins when set)
    endpoint = os.environ.get("GENOPS_S3_ENDPOINT_URL")
    client = boto3.client("s3", endpoint_url=endpoint) if endpoint else boto3.client("s3")
    found: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=parsed.netloc, Prefix=prefix
        ):
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                if not key.endswith("/"):
                    found.append(f"s3://{parsed.netloc}/{key}")
    except Exception as exc:  # botocore raises many kinds; the message is what matters
        raise CorpusError(f"{root}: cannot list objects in S3: {exc}") from exc
    return sorted(found)


def _list_files(root: str) -> list[str]:
    """Every file under a folder (recursively, sorted; hidden files left out), or the
    objects under an ``s3://`` prefix."""
    if _is_s3(root):
        return [u for u in _list_s3(root) if not _name_of(u).startswith(".")]
    path = Path(root)
    return sorted(
        str(p)
        for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )


def _is_folder(source: str) -> bool:
    if _is_s3(source):
        # an object with a known suffix is a file; anything else is a prefix
        return not any(_has_suffix(source, s) for s in _SUFFIXES.values())
    path = Path(source)
    if not path.exists():
        raise CorpusError(f"{source}: dataset.source not found")
    return path.is_dir()


def _read_raw(uri: str) -> bytes:
    from genops.core.io import DataLoadError, read_bytes

    try:
        raw = read_bytes(uri)
    except DataLoadError as exc:
        raise CorpusError(str(exc)) from exc
    if _name_of(uri).endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorpusError(f"{uri}: not a valid gzip file: {exc}") from exc
    return raw


def _lines(raw: bytes, uri: str, problems: list[str]) -> list[str | None]:
    """The lines of a file (without line ends; ``\\r\\n`` counts as one), ``None`` for a line
    that is not valid UTF-8 (each such line is a problem naming file, line and byte)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        parts = raw.split(b"\n")
        if parts and parts[-1] == b"":
            parts.pop()  # the file's final newline ends the last line; it starts none
        out: list[str | None] = []
        for number, part in enumerate(parts, start=1):
            try:
                line = part.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(
                    f"{uri}:{number}: not valid UTF-8 "
                    f"(byte 0x{part[exc.start]:02x} at offset {exc.start})"
                )
                out.append(None)
                continue
            out.append(line.removesuffix("\r"))
        return out
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _check_length(doc: Document, spec: TextSourceSpec, problems: list[str]) -> bool:
    """Whether a document is within ``min_chars`` / ``max_chars``; if not, a problem."""
    n = len(doc.text)
    if n > spec.max_chars:
        problems.append(
            f"{doc.where()}: over-long document: {n:,} characters > dataset.max_chars "
            f"({spec.max_chars:,})"
        )
        return False
    stripped = len(doc.text.strip())
    if stripped < spec.min_chars:
        what = "no text" if stripped == 0 else f"{stripped} character(s) after stripping"
        problems.append(
            f"{doc.where()}: empty document: {what} < dataset.min_chars ({spec.min_chars})"
        )
        return False
    return True


# ---------------------------------------------------------------- readers, one per format


def _read_wikitext_file(uri: str, spec: TextSourceSpec, problems: list[str]) -> list[Document]:
    docs: list[Document] = []
    for number, line in enumerate(_lines(_read_raw(uri), uri, problems), start=1):
        if line is None or not line.strip():
            continue  # blank lines separate paragraphs
        doc = Document(uri, number, line)
        if _check_length(doc, spec, problems):
            docs.append(doc)
    return docs


def _wikitext_files(root: str, files: Sequence[str] | None = None) -> dict[str, str | None]:
    """The file of each split in a WikiText folder (``train.txt.gz`` or ``train.txt``)."""
    present = set(files) if files is not None else None
    out: dict[str, str | None] = {}
    for split, stem in _WIKITEXT_STEMS.items():
        out[split] = None
        for name in (f"{stem}.txt.gz", f"{stem}.txt"):
            uri = _join(root, name)
            exists = uri in present if present is not None else Path(uri).is_file()
            if exists:
                out[split] = uri
                break
    return out


def _read_wikitext(
    root: str, spec: TextSourceSpec, files: Sequence[str] | None
) -> dict[str, list[Document]]:
    paths = _wikitext_files(root, files)
    missing = [
        f"{_join(root, _WIKITEXT_STEMS[s] + '.txt.gz')} (or .txt)"
        for s, p in paths.items()
        if p is None
    ]
    if missing:
        raise CorpusError(
            f"{root}: a wikitext folder needs train, valid and test files; missing: "
            + ", ".join(missing)
        )
    problems: list[str] = []
    splits = {s: _read_wikitext_file(str(p), spec, problems) for s, p in paths.items()}
    if problems:
        raise CorpusError.from_problems(root, problems)
    return splits


def _read_txt(uri: str, spec: TextSourceSpec, problems: list[str]) -> list[Document]:
    lines = _lines(_read_raw(uri), uri, problems)
    if any(line is None for line in lines):
        return []
    doc = Document(uri, 1, "\n".join(line for line in lines if line is not None))
    return [doc] if _check_length(doc, spec, problems) else []


def _read_jsonl(uri: str, spec: TextSourceSpec, problems: list[str]) -> list[Document]:
    docs: list[Document] = []
    key = spec.text_field
    for number, line in enumerate(_lines(_read_raw(uri), uri, problems), start=1):
        if line is None or not line.strip():
            continue
        where = f"{uri}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(record, dict):
            problems.append(f"{where}: expected a JSON object, got {type(record).__name__}")
            continue
        if key not in record:
            fields = sorted(record)[:10]
            problems.append(f"{where}: no field {key!r} (dataset.text_field); fields: {fields}")
            continue
        value = record[key]
        if not isinstance(value, str):
            kind = "null" if value is None else type(value).__name__
            problems.append(f"{where}: field {key!r} (dataset.text_field) is {kind}, not a string")
            continue
        doc = Document(uri, number, value)
        if _check_length(doc, spec, problems):
            docs.append(doc)
    return docs


def _read_csv(uri: str, spec: TextSourceSpec, problems: list[str]) -> list[Document]:
    lines = _lines(_read_raw(uri), uri, problems)
    if any(line is None for line in lines):
        return []
    if csv.field_size_limit() < 2**31 - 1:
        csv.field_size_limit(2**31 - 1)  # over-long fields are reported as over-long documents
    reader = csv.reader(io.StringIO("\n".join(str(line) for line in lines) + "\n", newline=""))
    key = spec.text_field
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        problems.append(f"{uri}:1: empty file (no header row)")
        return []
    except csv.Error as exc:
        problems.append(f"{uri}:1: not valid CSV ({exc})")
        return []
    if key not in header:
        problems.append(f"{uri}:1: no column {key!r} (dataset.text_field); columns: {header}")
        return []
    column = header.index(key)
    docs: list[Document] = []
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"{uri}:{start}: not valid CSV ({exc})")
            break
        line, start = start, reader.line_num + 1
        if not row:
            continue  # a blank line
        if len(row) != len(header):
            problems.append(
                f"{uri}:{line}: row has {len(row)} field(s), the header has {len(header)}"
            )
            continue
        doc = Document(uri, line, row[column])
        if _check_length(doc, spec, problems):
            docs.append(doc)
    return docs


def _read_parquet(uri: str, spec: TextSourceSpec, problems: list[str]) -> list[Document]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = spec.text_field
    try:
        handle = pq.ParquetFile(io.BytesIO(_read_raw(uri)))
        names = list(handle.schema_arrow.names)
        if key not in names:
            problems.append(f"{uri}: no column {key!r} (dataset.text_field); columns: {names}")
            return []
        column = handle.read(columns=[key]).column(key)
    except CorpusError:
        raise
    except Exception as exc:  # pyarrow raises several kinds for a bad file
        problems.append(f"{uri}: not a readable Parquet file: {exc}")
        return []
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        problems.append(
            f"{uri}: column {key!r} (dataset.text_field) has type {column.type}, not string"
        )
        return []
    docs: list[Document] = []
    for row, value in enumerate(column.to_pylist(), start=1):
        if value is None:
            problems.append(f"{uri}:{row}: column {key!r} (dataset.text_field) is null")
            continue
        doc = Document(uri, row, str(value))
        if _check_length(doc, spec, problems):
            docs.append(doc)
    return docs


_READERS = {"txt": _read_txt, "jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet}


def _format_of_file(uri: str) -> str:
    for fmt, suffixes in _SUFFIXES.items():
        if _has_suffix(uri, suffixes):
            return fmt
    known = ", ".join(s for suffixes in _SUFFIXES.values() for s in suffixes)
    raise CorpusError(
        f"{uri}: cannot tell the format from the name (known: {known}); set dataset.format"
    )


def _resolve(spec: TextSourceSpec) -> tuple[str, list[str] | None]:
    """The format to read, and the files of a folder source (``None``: a single file)."""
    source = spec.source
    if not _is_folder(source):
        if spec.format == "wikitext":
            raise CorpusError(
                f"{source}: dataset.format 'wikitext' needs a folder with train.txt(.gz), "
                "valid.txt(.gz) and test.txt(.gz)"
            )
        return (_format_of_file(source) if spec.format == "auto" else spec.format), None
    files = _list_files(source)
    if spec.format == "wikitext" or (
        spec.format == "auto" and _wikitext_files(source, files)["train"] is not None
    ):
        return "wikitext", files
    if spec.format != "auto":
        return spec.format, files
    kinds = sorted({fmt for fmt, sx in _SUFFIXES.items() for f in files if _has_suffix(f, sx)})
    if not kinds:
        raise CorpusError(
            f"{source}: no corpus files found (train.txt(.gz) for wikitext, or .txt, .jsonl, "
            ".csv, .parquet files)"
        )
    if len(kinds) > 1:
        raise CorpusError(
            f"{source}: files of several formats ({', '.join(kinds)}); set dataset.format"
        )
    return kinds[0], files


def _split_indices(n: int, spec: TextSplitSpec) -> dict[str, np.ndarray]:
    def size(share: float) -> int:
        k = round(n * share)
        return max(k, 1) if share > 0 and n >= 3 else k

    n_test, n_val = size(spec.test), size(spec.validation)
    order = np.random.default_rng(spec.seed).permutation(n)
    return {
        "train": np.sort(order[n_test + n_val :]),
        "validation": np.sort(order[n_test : n_test + n_val]),
        "test": np.sort(order[:n_test]),
    }


def read_corpus(spec: TextSourceSpec) -> dict[str, list[Document]]:
    """The documents of each split: ``{'train': [...], 'validation': [...], 'test': [...]}``.

    - ``wikitext``: a folder with ``train``/``valid``/``test`` ``.txt.gz`` (or ``.txt``), one
      paragraph or heading per line, kept exactly as in the file (less the line end); blank
      lines separate paragraphs and are no documents.
    - ``txt``: every ``.txt`` file under a folder (recursively), one document each (line 1).
    - ``jsonl``: one document per line, from the field ``text_field``.
    - ``csv`` / ``parquet``: one document per row of column ``text_field`` (CSV: the line
      where the row starts, the header being line 1; Parquet: the 1-based row).

    Formats without splits of their own are split at document level with ``split.seed``;
    ``max_documents`` keeps a seeded sample of the training documents. Raises
    :class:`CorpusError` listing every problem found (file:line, rule, value).
    """
    fmt, files = _resolve(spec)
    if fmt == "wikitext":
        splits = _read_wikitext(spec.source, spec, files)
    else:
        reader = _READERS[fmt]
        uris = (
            [spec.source] if files is None else [f for f in files if _has_suffix(f, _SUFFIXES[fmt])]
        )
        if not uris:
            raise CorpusError(f"{spec.source}: no {fmt} files ({', '.join(_SUFFIXES[fmt])})")
        problems: list[str] = []
        docs: list[Document] = []
        for uri in uris:
            docs.extend(reader(uri, spec, problems))
        if problems:
            raise CorpusError.from_problems(spec.source, problems)
        parts = _split_indices(len(docs), spec.split)
        splits = {name: [docs[int(i)] for i in parts[name]] for name in SPLITS}
    if not splits["train"]:
        raise CorpusError(f"{spec.source}: no training documents")
    if spec.max_documents is not None and len(splits["train"]) > spec.max_documents:
        rng = np.random.default_rng([spec.split.seed, 1])
        keep = np.sort(rng.choice(len(splits["train"]), spec.max_documents, replace=False))
        splits["train"] = [splits["train"][int(i)] for i in keep]
    return splits


# ---------------------------------------------------------------- personal data

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
)
# 13-19 digits: contiguous, in groups of four (4-4-4-1..7, 4-4-4-4-1..3) or 4-6-4/5 (Amex)
_CARD = re.compile(
    r"(?<![\w@.,/+-])(?:\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}(?:\1\d{1,3})?"
    r"|\d{4}([ -])\d{6}\2\d{4,5}|\d{13,19})(?![\w@]|[.,/-]\d)"
)
# phone numbers: +CC and groups; (area) and groups; groups joined by '-' or '.'; 3-3-4 with
# spaces. Nine to fifteen digits (checked after matching). WikiText writes separators inside
# numbers as ' @,@ ', ' @.@ ', ' @-@ ', which none of these forms accepts.
_PHONE = re.compile(
    r"(?<![\w@.,/+-])(?:"
    r"\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,4}){2,5}"
    r"|\(\d{2,4}\)[ .-]?\d{2,4}(?:[ .-]\d{2,4}){1,3}"
    r"|\d{2,4}(?:-\d{2,4}){2,4}"
    r"|\d{2,4}(?:\.\d{2,4}){2,4}"
    r"|\d{3} \d{3} \d{4}"
    r")(?![\w@]|[.,/-]\d)"
)
_HAS_DIGIT_RUN = re.compile(r"\d\d")
_DIGIT_GROUP = re.compile(r"\d+")
_YEAR = re.compile(r"1\d{3}|20\d{2}")


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def find_pii(text: str) -> list[tuple[PiiKind, int, int]]:
    """The personal data in ``text``: ``(kind, start, end)`` spans, sorted, not overlapping.
    E-mail addresses first, then Luhn-valid card numbers, then phone numbers (9 to 15
    digits) outside those."""
    spans: list[tuple[PiiKind, int, int]] = []
    if "@" in text:
        spans += [("email", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    if _HAS_DIGIT_RUN.search(text) is None:
        return spans

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for _, s, e in spans)

    for m in _CARD.finditer(text):
        digits = _digits(m.group())
        if 13 <= len(digits) <= 19 and _luhn(digits) and free(m.start(), m.end()):
            spans.append(("card", m.start(), m.end()))
    for m in _PHONE.finditer(text):
        groups = _DIGIT_GROUP.findall(m.group())
        if all(_YEAR.fullmatch(g) for g in groups) and not m.group().startswith("+"):
            continue  # '(1999) 2000 2001': years, not a phone number
        if 9 <= len(_digits(m.group())) <= 15 and free(m.start(), m.end()):
            spans.append(("phone", m.start(), m.end()))
    return sorted(spans, key=lambda s: s[1])


def redact(text: str) -> str:
    """``text`` with e-mail addresses, phone and card numbers replaced by ``[EMAIL]``,
    ``[PHONE]`` and ``[CARD]``."""
    spans = find_pii(text)
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for kind, start, end in spans:
        out += [text[pos:start], _PII_TOKENS[kind]]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def mask(kind: str, value: str) -> str:
    """A masked example for a report: ``j***@e***.com``, ``***-***-1234``,
    ``**** **** **** 1111``."""
    if kind == "email":
        local, _, domain = value.partition("@")
        tld = domain.rsplit(".", 1)[-1]
        return f"{local[:1]}***@{domain[:1]}***.{tld}"
    last4 = _digits(value)[-4:]
    if kind == "card":
        return f"**** **** **** {last4}"
    return f"***-***-{last4}"


# ---------------------------------------------------------------- checks

_WORD = re.compile(r"\S*\w\S*")  # a token with a letter or digit (not '=' or ',')


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _key(normalised: str) -> bytes:
    return hashlib.blake2b(normalised.encode("utf-8"), digest_size=16).digest()


@dataclass
class _Prepared:
    """A split's documents normalised once: hash keys, word tokens, and which are long
    enough to judge."""

    keys: list[bytes]
    words: list[list[str]]
    judged: list[bool]


def _prepare(docs: Sequence[Document], shingle_words: int) -> _Prepared:
    keys, words, judged = [], [], []
    for doc in docs:
        norm = _normalise(doc.text)
        tokens = _WORD.findall(norm)
        keys.append(_key(norm))
        words.append(tokens)
        judged.append(len(tokens) >= shingle_words)
    return _Prepared(keys, words, judged)


_U32 = np.uint64(0xFFFFFFFF)


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser on uint32 values (spreads structured hashes)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def minhash_signatures(
    words: Sequence[Sequence[str]], shingle_words: int, num_perm: int, seed: int = 1
) -> np.ndarray:
    """MinHash signatures, ``(documents, num_perm)`` uint32, of the ``shingle_words``-word
    shingles of each document (each needs at least that many words), computed with numpy:
    a 32-bit hash per shingle from the CRC-32 of its words, then ``num_perm`` odd affine
    permutations mod 2^32 (datasketch's ``affine32`` scheme) and a minimum per document."""
    k = shingle_words
    if not words:
        return np.zeros((0, num_perm), dtype=np.uint32)
    lengths = np.array([len(w) for w in words], dtype=np.int64)
    if int(lengths.min()) < k:
        raise ValueError(f"every document needs at least {k} words to shingle")
    table: dict[str, int] = {}
    flat = [t for w in words for t in w]
    for token in set(flat):
        table[token] = zlib.crc32(token.encode("utf-8"))
    token_hash = np.fromiter((table[t] for t in flat), dtype=np.uint64, count=len(flat))
    # a polynomial hash of each run of k tokens (wrapping mod 2^64), folded to 32 bits
    m = len(flat) - k + 1
    rolling = np.zeros(m, dtype=np.uint64)
    for i in range(k):
        rolling = rolling * np.uint64(1_000_003) + token_hash[i : i + m]
    folded = ((rolling ^ (rolling >> np.uint64(32))) & _U32).astype(np.uint32)
    # keep the runs that lie inside one document
    counts = lengths - k + 1
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    index = np.arange(int(counts.sum())) + np.repeat(offsets - firsts, counts)
    shingles = _fmix32(folded[index])
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)
    out = np.empty((len(words), num_perm), dtype=np.uint32)
    step = 8  # permutations at a time: (shingles x 8) uint32 stays small
    for lo in range(0, num_perm, step):
        permuted = shingles[:, None] * a[None, lo : lo + step] + b[None, lo : lo + step]
        out[:, lo : lo + step] = np.minimum.reduceat(permuted, firsts, axis=0)
    return out


def _near_duplicates(
    prepared: _Prepared, first: Sequence[bool], checks: CorpusChecksSpec
) -> list[tuple[int, int, float]]:
    """``(document, earlier document, estimated Jaccard)`` for each judged document (first of
    its exact copies) whose word shingles are near an earlier one's (MinHash LSH)."""
    from datasketch import MinHash, MinHashLSH

    num_perm = checks.minhash_permutations
    candidates = [i for i, ok in enumerate(prepared.judged) if ok and first[i]]
    signatures = minhash_signatures(
        [prepared.words[i] for i in candidates], checks.shingle_words, num_perm
    )
    permutations = MinHash(num_perm=num_perm, seed=1).permutations  # shared, not used to hash
    lsh = MinHashLSH(threshold=checks.near_duplicate_threshold, num_perm=num_perm)
    position = {index: n for n, index in enumerate(candidates)}
    found: list[tuple[int, int, float]] = []
    for n, index in enumerate(candidates):
        signature = signatures[n]
        sketch = MinHash(
            num_perm=num_perm,
            seed=1,
            hashvalues=signature,
            permutations=permutations,
            scheme="affine32",
        )
        best: tuple[float, int] | None = None
        for other in lsh.query(sketch):
            j = int(other)
            jaccard = float(np.count_nonzero(signatures[position[j]] == signature)) / num_perm
            if jaccard >= checks.near_duplicate_threshold and (
                best is None or jaccard > best[0] or (jaccard == best[0] and j < best[1])
            ):
                best = (jaccard, j)
        if best is not None:
            found.append((index, best[1], best[0]))
        else:
            lsh.insert(str(index), sketch)
    return found


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


@dataclass
class CorpusReport:
    """The outcome of :func:`check_corpus`.

    ``decision``: ``"continue"``, ``"stop"`` (a duplicate or overlap gate failed, or personal
    data under policy ``block``) or ``"redact"`` (personal data under policy ``redact``:
    :func:`apply_policy` redacts it). ``verdict`` carries one result per rule with its
    threshold; its policy is ``block`` when the decision is ``stop``, ``mitigate`` for
    ``redact``, else the personal-data policy.
    """

    passed: bool
    decision: str
    stats: dict[str, float]
    findings: list[str]
    verdict: BiasVerdict
    pii_policy: str = "warn"
    seconds: float = field(default=0.0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": bool(self.passed),
            "decision": self.decision,
            "pii_policy": self.pii_policy,
            "stats": {k: _json_float(v) for k, v in self.stats.items()},
            "findings": list(self.findings),
            "verdict": self.verdict.to_dict(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def _summary(self) -> str:
        status = "PASSED" if self.passed else "FAILED"
        failed = len(self.verdict.failures)
        return (
            f"{status}: decision {self.decision} (personal data policy {self.pii_policy}); "
            f"{failed} of {len(self.verdict.results)} rules failed"
        )

    def to_markdown(self) -> str:
        lines = ["# Corpus report", "", f"**{self._summary()}**", "", "## Statistics", ""]
        lines += ["| statistic | value |", "|---|---:|"]
        lines += [f"| {k} | {_fmt_stat(v)} |" for k, v in self.stats.items()]
        lines += ["", "## Findings", ""]
        lines += [f"- {_md(f)}" for f in self.findings] or ["None."]
        lines += ["", render_markdown(self.verdict, title="Corpus gates — data check")]
        return "\n".join(lines)

    def to_html(self) -> str:
        esc = html.escape
        page = render_html(self.verdict, title="Corpus report — data check")
        rows = "".join(
            f"<tr><td>{esc(k)}</td><td class=num>{esc(_fmt_stat(v))}</td></tr>"
            for k, v in self.stats.items()
        )
        items = "".join(f"<li>{esc(f)}</li>" for f in self.findings) or "<li>None.</li>"
        extra = (
            f"<p><b>{esc(self._summary())}</b></p>"
            "<h2>Statistics</h2><table><thead><tr><th>statistic</th><th>value</th></tr>"
            f"</thead><tbody>{rows}</tbody></table><h2>Findings</h2><ul>{items}</ul>"
        )
        marker = "<h2>Metrics</h2>"
        return page.replace(marker, extra + marker, 1) if marker in page else page + extra


def _json_float(x: float) -> float | str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return float(x)


def _fmt_stat(x: float) -> str:
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:.4f}"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@dataclass
class _Outcome:
    """What the checks add up: statistics, findings and verdict results."""

    stats: dict[str, float] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    results: list[MetricResult] = field(default_factory=list)

    def listed(self, lines: Sequence[str], rule: str) -> None:
        """Findings of one rule, the first :data:`_MAX_FINDINGS`, the rest counted."""
        self.findings.extend(lines[:_MAX_FINDINGS])
        if len(lines) > _MAX_FINDINGS:
            self.findings.append(f"{rule}: ... and {len(lines) - _MAX_FINDINGS} more")


def _check_duplicates(
    train: Sequence[Document], prep: _Prepared, checks: CorpusChecksSpec, out: _Outcome
) -> dict[bytes, int]:
    """Exact and near duplicates in train; returns the first train document of each text."""
    seen: dict[bytes, int] = {}
    first = [True] * len(train)
    exact_lines: list[str] = []
    short = 0
    for i, key in enumerate(prep.keys):
        if key not in seen:
            seen[key] = i
            continue
        first[i] = False
        if not prep.judged[i]:
            short += 1  # a heading or a lone word: too short to judge
            continue
        exact_lines.append(
            f"{train[i].where()}: duplicate_share: exact duplicate of "
            f"{train[seen[key]].where()} ({len(prep.words[i])} words)"
        )
    near = _near_duplicates(prep, first, checks) if train else []
    near_lines = [
        f"{train[i].where()}: near_duplicate_share: near duplicate of {train[j].where()} "
        f"(estimated Jaccard {jac:.2f} >= checks.near_duplicate_threshold "
        f"{checks.near_duplicate_threshold:.2f})"
        for i, j, jac in near
    ]
    exact_share = _share(len(exact_lines), len(train))
    near_share = _share(len(near), len(train))
    out.stats.update(
        {
            "train_exact_duplicates": float(len(exact_lines)),
            "train_exact_duplicate_share": exact_share,
            "train_exact_duplicates_short": float(short),
            "train_near_duplicates": float(len(near)),
            "train_near_duplicate_share": near_share,
            "train_duplicate_share": exact_share + near_share,
        }
    )
    out.results.append(
        make_result(
            "data",
            "duplicate_share",
            "train",
            [],
            exact_share + near_share,
            checks.max_duplicate_share,
            "<=",
            note="exact + near duplicates of an earlier train document",
            details={"exact": exact_share, "near": near_share, "documents": float(len(train))},
        )
    )
    out.results.append(
        make_result(
            "data",
            "near_duplicate_share",
            "train",
            [],
            near_share,
            None,
            "report",
            note=f"MinHash LSH, {checks.minhash_permutations} permutations, "
            f"{checks.shingle_words}-word shingles, Jaccard >= {checks.near_duplicate_threshold:g}",
            details={"near_duplicates": float(len(near))},
        )
    )
    out.listed(exact_lines, "duplicate_share")
    out.listed(near_lines, "near_duplicate_share")
    return seen


_PII_LABELS = {
    "email": ("an e-mail address", "e-mail addresses"),
    "phone": ("a phone number", "phone numbers"),
    "card": ("a card number", "card numbers"),
}


def _check_personal_data(
    splits: Mapping[str, Sequence[Document]], checks: CorpusChecksSpec, out: _Outcome
) -> None:
    """E-mail addresses, phone and card numbers in every split: counts, shares of documents
    and masked examples."""
    names = list(splits)
    total = sum(len(docs) for docs in splits.values())
    matches = dict.fromkeys(PII_KINDS, 0)
    documents = dict.fromkeys(PII_KINDS, 0)
    per_split = {(kind, n): 0 for kind in PII_KINDS for n in names}
    examples: dict[str, list[str]] = {kind: [] for kind in PII_KINDS}
    for name, docs in splits.items():
        for doc in docs:
            kinds_here: set[PiiKind] = set()
            for kind, start, end in find_pii(doc.text):
                matches[kind] += 1
                kinds_here.add(kind)
                if len(examples[kind]) < _MAX_PII_EXAMPLES:
                    examples[kind].append(
                        f"{doc.where()}: pii_share[{kind}]: {mask(kind, doc.text[start:end])}"
                    )
            for kind in kinds_here:
                documents[kind] += 1
                per_split[(kind, name)] += 1
    for kind in PII_KINDS:
        share = _share(documents[kind], total)
        out.stats[f"pii_{kind}_matches"] = float(matches[kind])
        out.stats[f"pii_{kind}_documents"] = float(documents[kind])
        out.stats[f"pii_{kind}_share"] = share
        details = {"matches": float(matches[kind]), "documents": float(documents[kind])}
        details.update({f"{n}_documents": float(per_split[(kind, n)]) for n in names})
        one, many = _PII_LABELS[kind]
        out.results.append(
            make_result(
                "data",
                "pii_share",
                kind,
                [],
                share,
                0.0,
                "<=",
                note=f"share of documents with {one}; policy {checks.pii_policy}",
                details=details,
            )
        )
        if matches[kind]:
            out.findings.append(
                f"pii_share[{kind}]: {matches[kind]} {many} in {documents[kind]} "
                f"document(s), {share:.2%} of {total} (masked examples follow)"
            )
            out.findings.extend(examples[kind])


def _check_overlap(
    splits: Mapping[str, Sequence[Document]],
    prepared: Mapping[str, _Prepared],
    first_in_train: Mapping[bytes, int],
    checks: CorpusChecksSpec,
    out: _Outcome,
) -> None:
    """Validation and test documents whose normalised text is also in train."""
    train = splits.get("train", [])
    judged_train = {
        key for key, ok in zip(prepared["train"].keys, prepared["train"].judged, strict=True) if ok
    }
    for name, docs in splits.items():
        if name == "train":
            continue
        prep = prepared[name]
        lines = [
            f"{doc.where()}: overlap_share[{name}]: also in train "
            f"({train[first_in_train[key]].where()})"
            for doc, key, ok in zip(docs, prep.keys, prep.judged, strict=True)
            if ok and key in judged_train
        ]
        share = _share(len(lines), len(docs))
        out.stats[f"{name}_overlap_documents"] = float(len(lines))
        out.stats[f"{name}_overlap_share"] = share
        out.results.append(
            make_result(
                "data",
                "overlap_share",
                name,
                [],
                share,
                checks.max_overlap_share,
                "<=",
                note=f"{name} documents also in train (normalised text)"
                + ("" if docs else "; the split is empty"),
                details={"overlap": float(len(lines)), "documents": float(len(docs))},
            )
        )
        out.listed(lines, f"overlap_share[{name}]")


def check_corpus(
    splits: Mapping[str, Sequence[Document]], checks: CorpusChecksSpec
) -> CorpusReport:
    """Duplicates in train (exact by normalised text, near by MinHash LSH over word shingles),
    personal data in every split, and validation/test documents also in train.

    A failed duplicate or overlap gate stops the run; personal data is handled by
    ``checks.pii_policy`` (see :class:`CorpusReport`)."""
    import time

    started = time.perf_counter()
    names = [s for s in SPLITS if s in splits] + [s for s in splits if s not in SPLITS]
    ordered = {name: splits[name] for name in names}
    ordered.setdefault("train", [])
    out = _Outcome()
    prepared: dict[str, _Prepared] = {}
    for name, docs in ordered.items():
        prepared[name] = _prepare(docs, checks.shingle_words)
        out.stats[f"{name}_documents"] = float(len(docs))
        out.stats[f"{name}_words"] = float(sum(len(d.text.split()) for d in docs))
        out.stats[f"{name}_chars"] = float(sum(len(d.text) for d in docs))
        out.stats[f"{name}_short_documents"] = float(prepared[name].judged.count(False))
    first_in_train = _check_duplicates(ordered["train"], prepared["train"], checks, out)
    _check_personal_data(ordered, checks, out)
    _check_overlap(ordered, prepared, first_in_train, checks, out)

    hard_fail = any(not r.passed for r in out.results if r.metric != "pii_share")
    pii_found = any(not r.passed for r in out.results if r.metric == "pii_share")
    policy: BiasPolicy = _VERDICT_POLICY[checks.pii_policy]
    if hard_fail:
        decision, policy = "stop", "block"
    elif pii_found:
        decision = {"block": "stop", "warn": "continue", "redact": "redact"}[checks.pii_policy]
    else:
        decision = "continue"
    verdict = BiasVerdict.from_results("data", out.results, policy=policy)
    out.findings += [f"FAILED: {r.describe()}" for r in verdict.failures]
    return CorpusReport(
        passed=verdict.passed,
        decision=decision,
        stats=out.stats,
        findings=out.findings,
        verdict=verdict,
        pii_policy=checks.pii_policy,
        seconds=time.perf_counter() - started,
    )


def apply_policy(
    splits: Mapping[str, Sequence[Document]], report: CorpusReport
) -> dict[str, list[Document]]:
    """The splits with personal data redacted when the report's decision is ``redact``;
    otherwise the same documents."""
    if report.decision != "redact":
        return {name: list(docs) for name, docs in splits.items()}
    return {
        name: [Document(d.source, d.line, redact(d.text)) for d in docs]
        for name, docs in splits.items()
    }
