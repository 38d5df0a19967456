"""A document of a text corpus and where it came from (for errors that name file and line)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    """One document: a paragraph of a line-per-paragraph corpus (WikiText), a ``.txt`` file,
    a JSON line or a table row. ``source`` is the file (or ``s3://`` URI) and ``line`` the
    1-based line (or row) where the document starts."""

    source: str
    line: int
    text: str

    def where(self) -> str:
        return f"{self.source}:{self.line}"
