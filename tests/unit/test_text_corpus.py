"""The text corpus: reading every format (errors name file and line), the duplicate, personal
data and overlap checks, the policies, and the real WikiText-2."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from genops.core.report import render_markdown
from genops.core.verdict import BiasVerdict
from genops.workloads.text.corpus import (
    CorpusChecksSpec,
    CorpusError,
    CorpusReport,
    TextSourceSpec,
    apply_policy,
    check_corpus,
    find_pii,
    mask,
    minhash_signatures,
    read_corpus,
    redact,
)
from genops.workloads.text.documents import Document

ROOT = Path(__file__).resolve().parents[2]
WIKITEXT = ROOT / "data" / "text" / "wikitext-2"


def _spec(source: Path | str, **kw: Any) -> TextSourceSpec:
    return TextSourceSpec(name="corpus", source=str(source), **kw)


def _gz(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    return path


def _paragraph(i: int, words: int = 30) -> str:
    """A distinct paragraph (no two share a 5-word shingle)."""
    return " ".join(f"w{i}x{j}" for j in range(words))


def _docs(texts: list[str], source: str = "mem.txt") -> list[Document]:
    return [Document(source, n, t) for n, t in enumerate(texts, start=1)]


def _splits(
    train: Sequence[str], validation: Sequence[str] = (), test: Sequence[str] = ()
) -> dict[str, list[Document]]:
    return {
        "train": _docs(list(train), "train.txt"),
        "validation": _docs(list(validation), "valid.txt"),
        "test": _docs(list(test), "test.txt"),
    }


# ---------------------------------------------------------------- reading


def test_wikitext_folder_of_gz_files(tmp_path: Path) -> None:
    _gz(
        tmp_path / "train.txt.gz",
        " \n = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : 152 @,@ 500 copies . \n\n"
        " = = Gameplay = = \n",
    )
    _gz(tmp_path / "valid.txt.gz", " \n = Homarus gammarus = \n")
    _gz(tmp_path / "test.txt.gz", " = Robert Boulter = \n \n Robert is an actor . \n")
    for fmt in ("auto", "wikitext"):
        splits = read_corpus(_spec(tmp_path, format=fmt))
        train = splits["train"]
        assert [d.line for d in train] == [2, 4, 6]
        # each line exactly as in the file, less its newline (leading/trailing spaces kept)
        assert train[0].text == " = Valkyria Chronicles III = "
        assert train[1].text == " Senjō no Valkyria 3 : 152 @,@ 500 copies . "
        assert train[0].where() == f"{tmp_path / 'train.txt.gz'}:2"
        assert [d.text for d in splits["validation"]] == [" = Homarus gammarus = "]
        assert [d.line for d in splits["test"]] == [1, 3]


def test_wikitext_plain_txt_files_and_missing_split(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text(" a b c \n")
    (tmp_path / "valid.txt").write_text(" d \n")
    with pytest.raises(CorpusError, match=r"missing: .*test\.txt\.gz \(or \.txt\)"):
        read_corpus(_spec(tmp_path))
    (tmp_path / "test.txt").write_text(" e \n")
    splits = read_corpus(_spec(tmp_path))
    assert {k: len(v) for k, v in splits.items()} == {"train": 1, "validation": 1, "test": 1}


def test_txt_folder_recursive_one_document_per_file(tmp_path: Path) -> None:
    for i in range(20):
        sub = tmp_path / ("a" if i % 2 else "b") / "deep"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"doc{i:02d}.txt").write_text(f"Document {i}.\nSecond line.\n")
    (tmp_path / ".hidden.txt").write_text("not read")
    splits = read_corpus(_spec(tmp_path, split={"validation": 0.2, "test": 0.1, "seed": 3}))
    sizes = {k: len(v) for k, v in splits.items()}
    assert sizes == {"train": 14, "validation": 4, "test": 2}
    every = [d for docs in splits.values() for d in docs]
    assert len({d.source for d in every}) == 20
    assert all(d.line == 1 and d.text.endswith("Second line.") for d in every)
    # seeded: the same split again, another seed another split
    again = read_corpus(_spec(tmp_path, split={"validation": 0.2, "test": 0.1, "seed": 3}))
    assert again == splits
    other = read_corpus(_spec(tmp_path, split={"validation": 0.2, "test": 0.1, "seed": 4}))
    assert other["test"] != splits["test"]


def test_jsonl_lines_and_text_field(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"body": f"text number {i}", "id": i}) for i in range(10)]
    path.write_text("\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:]) + "\n")
    splits = read_corpus(_spec(path, text_field="body", split={"validation": 0.1, "test": 0.1}))
    every = sorted((d for docs in splits.values() for d in docs), key=lambda d: d.line)
    assert len(every) == 10
    assert every[5].line == 7 and every[5].text == "text number 5"  # the blank line 6 skipped
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "validation": 1, "test": 1}


def test_csv_rows_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.csv"
    path.write_text('id,text\n1,"first row"\n2,"a row\nover two lines"\n3,third\n')
    splits = read_corpus(_spec(path, split={"validation": 0.0, "test": 0.0}))
    train = splits["train"]
    assert [(d.line, d.text) for d in train] == [
        (2, "first row"),
        (3, "a row\nover two lines"),
        (5, "third"),
    ]
    assert splits["validation"] == [] and splits["test"] == []


def test_parquet_rows(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "corpus.parquet"
    pd.DataFrame({"text": [f"row {i}" for i in range(10)], "n": range(10)}).to_parquet(path)
    splits = read_corpus(_spec(path, split={"validation": 0.2, "test": 0.2, "seed": 1}))
    every = sorted((d for docs in splits.values() for d in docs), key=lambda d: d.line)
    assert [(d.line, d.text) for d in every][:2] == [(1, "row 0"), (2, "row 1")]
    assert {k: len(v) for k, v in splits.items()} == {"train": 6, "validation": 2, "test": 2}
    pd.DataFrame({"body": ["x"]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(CorpusError, match=r"other\.parquet: no column 'text'.*\['body'\]"):
        read_corpus(_spec(tmp_path / "other.parquet"))
    pd.DataFrame({"text": [1, 2]}).to_parquet(tmp_path / "ints.parquet")
    with pytest.raises(CorpusError, match=r"ints\.parquet: column 'text'.*type int64"):
        read_corpus(_spec(tmp_path / "ints.parquet"))


def test_auto_format_of_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b'{"text": "three"}\n'))
    splits = read_corpus(_spec(tmp_path, split={"validation": 0.0, "test": 0.0}))
    assert [d.text for d in splits["train"]] == ["one", "two", "three"]
    (tmp_path / "c.csv").write_text("text\nfour\n")
    with pytest.raises(CorpusError, match=r"several formats \(csv, jsonl\); set dataset.format"):
        read_corpus(_spec(tmp_path))
    csv_only = read_corpus(_spec(tmp_path, format="csv", split={"validation": 0, "test": 0}))
    assert [d.text for d in csv_only["train"]] == ["four"]
    with pytest.raises(CorpusError, match=r"c\.csv\.bak: dataset.source not found"):
        read_corpus(_spec(tmp_path / "c.csv.bak"))
    (tmp_path / "c.csv.bak").write_text("x")
    with pytest.raises(CorpusError, match="cannot tell the format"):
        read_corpus(_spec(tmp_path / "c.csv.bak"))


def test_invalid_utf8_names_every_file_and_line(tmp_path: Path) -> None:
    good = b'{"text": "fine"}\n'
    path = tmp_path / "x.jsonl"
    path.write_bytes(good * 2 + b'{"t\xff": 1}\n' + good + b'{"text": "caf\xe9"}\n')
    (tmp_path / "y.txt").write_bytes(b"line one\nline \xfe two\n")
    with pytest.raises(CorpusError) as info:
        read_corpus(_spec(path))
    assert str(info.value).startswith(f"{path}: 2 problems:")
    assert f"{path}:3: not valid UTF-8 (byte 0xff at offset 3)" in str(info.value)
    assert f"{path}:5: not valid UTF-8 (byte 0xe9 at offset 13)" in str(info.value)
    assert len(info.value.problems) == 2
    with pytest.raises(CorpusError, match=r"y\.txt:2: not valid UTF-8 \(byte 0xfe at offset 5\)"):
        read_corpus(_spec(tmp_path / "y.txt"))


def test_over_long_empty_and_malformed_documents_are_all_named(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    records = [
        {"text": "ok"},
        {"text": "x" * 101},
        {"text": "   "},
        {"body": "no text field"},
        {"text": None},
        [1, 2],
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n{broken\n")
    with pytest.raises(CorpusError) as info:
        read_corpus(_spec(path, max_chars=100))
    message = str(info.value)
    assert f"{path}:2: over-long document: 101 characters > dataset.max_chars (100)" in message
    assert f"{path}:3: empty document: no text < dataset.min_chars (1)" in message
    assert f"{path}:4: no field 'text' (dataset.text_field); fields: ['body']" in message
    assert f"{path}:5: field 'text' (dataset.text_field) is null, not a string" in message
    assert f"{path}:6: expected a JSON object, got list" in message
    assert f"{path}:7: not valid JSON" in message
    assert len(info.value.problems) == 6
    # WikiText: an over-long paragraph is named by line; blank lines are no documents
    _gz(tmp_path / "w" / "train.txt.gz", " \n a \n" + " y" * 60 + "\n")
    _gz(tmp_path / "w" / "valid.txt.gz", " b \n")
    _gz(tmp_path / "w" / "test.txt.gz", " c \n")
    with pytest.raises(CorpusError, match=r"w/train\.txt\.gz:3: over-long document: 120 char"):
        read_corpus(_spec(tmp_path / "w", max_chars=100))
    # a short txt file is an empty document under min_chars
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "short.txt").write_text(" hi \n")
    (tmp_path / "t" / "long.txt").write_text("long enough\n")
    with pytest.raises(CorpusError, match=r"short\.txt:1: empty document: 2 character"):
        read_corpus(_spec(tmp_path / "t", min_chars=5))


def test_max_documents_samples_train_only(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(100)))
    full = read_corpus(_spec(path))
    small = read_corpus(_spec(path, max_documents=10))
    assert len(small["train"]) == 10 and set(small["train"]) <= set(full["train"])
    assert small["validation"] == full["validation"] and small["test"] == full["test"]
    assert [d.line for d in small["train"]] == sorted(d.line for d in small["train"])
    assert read_corpus(_spec(path, max_documents=10)) == small


def test_spec_validation() -> None:
    with pytest.raises(ValidationError, match="name"):
        TextSourceSpec(name="Bad Name", source="/x")
    with pytest.raises(ValidationError, match="leave documents"):
        TextSourceSpec(name="a", source="/x", split={"validation": 0.5, "test": 0.5})
    with pytest.raises(ValidationError, match="min_chars"):
        TextSourceSpec(name="a", source="/x", min_chars=10, max_chars=5)
    with pytest.raises(ValidationError, match="extra"):
        CorpusChecksSpec(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(CorpusError, match="dataset.source not found"):
        read_corpus(_spec("/nonexistent/folder"))


def test_s3_wikitext_prefix_and_jsonl_object(tmp_path: Path, s3_endpoint: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="text")
    for name, text in (("train", " a b \n \n c d \n"), ("valid", " e \n"), ("test", " f \n")):
        s3.put_object(Bucket="text", Key=f"wt/{name}.txt.gz", Body=gzip.compress(text.encode()))
    splits = read_corpus(_spec("s3://text/wt"))
    assert [(d.where(), d.text) for d in splits["train"]] == [
        ("s3://text/wt/train.txt.gz:1", " a b "),
        ("s3://text/wt/train.txt.gz:3", " c d "),
    ]
    s3.put_object(Bucket="text", Key="j/c.jsonl", Body=b'{"text": "x"}\n{"text": ""}\n')
    with pytest.raises(CorpusError, match=r"s3://text/j/c\.jsonl:2: empty document"):
        read_corpus(_spec("s3://text/j/c.jsonl"))


# ---------------------------------------------------------------- duplicates


def test_exact_and_near_duplicates_are_found() -> None:
    base = [_paragraph(i) for i in range(40)]
    base[3] = _paragraph(3, words=60)
    near = base[3] + " appended"  # one more shingle: Jaccard 56/57
    train = [*base, base[5].upper(), "  " + base[7] + " ", near, "= = Plot = =", "= = Plot = ="]
    report = check_corpus(_splits(train), CorpusChecksSpec(max_duplicate_share=0.5))
    assert report.stats["train_exact_duplicates"] == 2  # case and spacing are normalised
    assert report.stats["train_near_duplicates"] == 1
    assert report.stats["train_exact_duplicates_short"] == 1  # the heading: too short to judge
    assert report.stats["train_duplicate_share"] == pytest.approx(3 / 45)
    assert "train.txt:41: duplicate_share: exact duplicate of train.txt:6 (30 words)" in (
        report.findings
    )
    assert any(
        f.startswith("train.txt:43: near_duplicate_share: near duplicate of train.txt:4")
        for f in report.findings
    )
    assert report.passed and report.decision == "continue"
    # above the limit the gate fails and the run stops
    strict = check_corpus(_splits(train), CorpusChecksSpec(max_duplicate_share=0.05))
    assert not strict.passed and strict.decision == "stop"
    failed = strict.verdict.failures
    assert [r.metric for r in failed] == ["duplicate_share"]
    assert failed[0].threshold == 0.05 and failed[0].value == pytest.approx(3 / 45)
    assert any(
        f.startswith("FAILED: duplicate_share for train = 0.067 > 0.050") for f in (strict.findings)
    )


def test_unrelated_documents_are_no_near_duplicates() -> None:
    report = check_corpus(_splits([_paragraph(i) for i in range(200)]), CorpusChecksSpec())
    assert report.stats["train_near_duplicates"] == 0
    assert report.stats["train_exact_duplicates"] == 0
    assert report.passed


def test_minhash_signatures_estimate_jaccard() -> None:
    a = [f"w{i}" for i in range(100)]
    b = a[:50] + [f"x{i}" for i in range(50)]  # 46 of 146 distinct 5-word shingles shared
    sig = minhash_signatures([a, list(a), b, [f"y{i}" for i in range(100)]], 5, 256)
    assert sig.shape == (4, 256) and sig.dtype.name == "uint32"
    assert (sig[0] == sig[1]).all()
    assert float((sig[0] == sig[2]).mean()) == pytest.approx(46 / 146, abs=0.08)
    assert float((sig[0] == sig[3]).mean()) < 0.05
    with pytest.raises(ValueError, match="at least 5 words"):
        minhash_signatures([["too", "short"]], 5, 64)


# ---------------------------------------------------------------- personal data

PII_TEXT = (
    "Write to john.doe@example.com or call +1 (202) 555-0143; "
    "card 4111 1111 1111 1111 expires soon."
)


def test_pii_found_masked_and_redacted() -> None:
    kinds = [kind for kind, _, _ in find_pii(PII_TEXT)]
    assert kinds == ["email", "phone", "card"]
    assert redact(PII_TEXT) == "Write to [EMAIL] or call [PHONE]; card [CARD] expires soon."
    assert mask("email", "john.doe@example.com") == "j***@e***.com"
    assert mask("phone", "+1 (202) 555-0143") == "***-***-0143"
    assert mask("card", "4111 1111 1111 1111") == "**** **** **** 1111"
    for text in ("202-555-0143", "+44 20 7946 0958", "06.12.34.56.78", "202 555 0143"):
        assert [k for k, _, _ in find_pii(f"call {text} now")] == ["phone"], text
    for text in ("4111-1111-1111-1111", "4111111111111111", "378282246310005"):
        assert [k for k, _, _ in find_pii(f"pay {text} now")] == ["card"], text
    assert find_pii("pay 4111 1111 1111 1112 now") == []  # fails the Luhn check


@pytest.mark.parametrize(
    "text",
    [
        "sold 152 @,@ 500 copies",
        "2 @,@ 000 @,@ 000 people",
        "a 12 @.@ 5 km road from 1914 – 1918",
        "in 1999 2000 2001 and 2002",
        "( 1999 ) 2000 2001",
        "(1999) 2000 2001",
        "ISBN 978-0-14-044913-6 and 978 @-@ 0 @-@ 14",
        "on 2010-11-12 at 10 : 30",
        "scores 24 – 21 , 3 – 1 , 100 200 300",
        "well @-@ known @.@ org",
    ],
)
def test_wikitext_numbers_are_not_personal_data(text: str) -> None:
    assert find_pii(text) == []


@pytest.mark.parametrize(
    ("policy", "decision", "verdict_policy"),
    [("block", "stop", "block"), ("warn", "continue", "warn"), ("redact", "redact", "mitigate")],
)
def test_pii_policies(policy: str, decision: str, verdict_policy: str) -> None:
    train = [_paragraph(i) for i in range(9)] + [PII_TEXT]
    splits = _splits(train, validation=["mail me at a.b@c.org please ok"], test=[_paragraph(99)])
    report = check_corpus(splits, CorpusChecksSpec(pii_policy=policy))  # type: ignore[arg-type]
    assert not report.passed and report.decision == decision
    assert report.verdict.policy == verdict_policy and not report.verdict.passed
    assert report.stats["pii_email_matches"] == 2 and report.stats["pii_email_documents"] == 2
    assert report.stats["pii_email_share"] == pytest.approx(2 / 12)
    assert report.stats["pii_phone_documents"] == 1 and report.stats["pii_card_documents"] == 1
    failed = {r.attribute for r in report.verdict.failures}
    assert failed == {"email", "phone", "card"}
    text = "\n".join(report.findings)
    assert "train.txt:10: pii_share[email]: j***@e***.com" in text
    assert "valid.txt:1: pii_share[email]: a***@c***.org" in text
    assert "train.txt:10: pii_share[phone]: ***-***-0143" in text
    assert "train.txt:10: pii_share[card]: **** **** **** 1111" in text
    assert "john.doe" not in text and "4111 1111" not in text and "555-0143" not in text
    after = apply_policy(splits, report)
    if policy == "redact":
        assert after["train"][9].text == redact(PII_TEXT)
        assert after["train"][9].where() == "train.txt:10"
        assert after["validation"][0].text == "mail me at [EMAIL] please ok"
        assert check_corpus(after, CorpusChecksSpec(pii_policy="redact")).passed
    else:
        assert after == splits


def test_pii_masked_examples_are_capped() -> None:
    train = [f"doc {i} mail user{i}@example.com now and then" for i in range(12)]
    report = check_corpus(_splits(train), CorpusChecksSpec())
    examples = [f for f in report.findings if ": pii_share[email]: " in f and "***" in f]
    assert len(examples) == 5
    assert report.stats["pii_email_matches"] == 12


# ---------------------------------------------------------------- overlap


def test_train_holdout_overlap_is_found() -> None:
    train = [_paragraph(i) for i in range(50)] + ["= = History = ="]
    validation = [_paragraph(100 + i) for i in range(9)] + [_paragraph(7).upper()]
    test = [_paragraph(200 + i) for i in range(10)] + ["= = History = ="]  # too short to count
    report = check_corpus(_splits(train, validation, test), CorpusChecksSpec())
    assert report.stats["validation_overlap_documents"] == 1
    assert report.stats["validation_overlap_share"] == pytest.approx(0.1)
    assert report.stats["test_overlap_documents"] == 0
    assert "valid.txt:10: overlap_share[validation]: also in train (train.txt:8)" in (
        report.findings
    )
    assert not report.passed and report.decision == "stop"
    failed = report.verdict.failures
    assert [(r.metric, r.attribute) for r in failed] == [("overlap_share", "validation")]
    lenient = check_corpus(
        _splits(train, validation, test), CorpusChecksSpec(max_overlap_share=0.2)
    )
    assert lenient.passed and lenient.decision == "continue"


# ---------------------------------------------------------------- report


def test_report_serialises_and_renders() -> None:
    train = [_paragraph(i) for i in range(9)] + [PII_TEXT]
    report = check_corpus(_splits(train, [_paragraph(1)], []), CorpusChecksSpec())
    assert isinstance(report, CorpusReport)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["decision"] == "stop" and data["stats"]["train_documents"] == 10
    verdict = BiasVerdict.from_dict(data["verdict"])
    assert verdict.check == "data" and len(verdict.results) == len(report.verdict.results)
    metrics = [(r.metric, r.attribute) for r in report.verdict.results]
    assert metrics == [
        ("duplicate_share", "train"),
        ("near_duplicate_share", "train"),
        ("pii_share", "email"),
        ("pii_share", "phone"),
        ("pii_share", "card"),
        ("overlap_share", "validation"),
        ("overlap_share", "test"),
    ]
    md = report.to_markdown()
    assert "# Corpus report" in md and "train_documents" in md and "j***@e***.com" in md
    assert "john.doe" not in md and "overlap_share" in md
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>") and "<h2>Findings</h2>" in page
    assert "j***@e***.com" in page and "john.doe" not in page
    assert "FAILED" in render_markdown(report.verdict)


# ---------------------------------------------------------------- the real WikiText-2


@pytest.mark.skipif(not WIKITEXT.is_dir(), reason="WikiText-2 is not in data/text/wikitext-2")
def test_real_wikitext2_matches_its_readme() -> None:
    splits = read_corpus(_spec(WIKITEXT))
    readme = {
        "train": (36_718, 2_051_910),
        "validation": (3_760, 213_886),
        "test": (4_358, 241_211),
    }
    stems = {"train": "train", "validation": "valid", "test": "test"}
    for split, (lines, words) in readme.items():
        with gzip.open(WIKITEXT / f"{stems[split]}.txt.gz", "rt", encoding="utf-8") as handle:
            file_lines = handle.read().split("\n")[:-1]
        assert len(file_lines) == lines
        docs = splits[split]
        # one document per non-empty line, kept exactly, at its 1-based line
        assert len(docs) == sum(1 for line in file_lines if line.strip())
        assert all(file_lines[d.line - 1] == d.text for d in docs[:: max(1, len(docs) // 500)])
        assert max(d.line for d in docs) <= lines
        assert sum(len(d.text.split()) for d in docs) == words  # `wc -w` of the README
    assert splits["train"][0].text == " = Valkyria Chronicles III = "
    assert splits["train"][0].line == 2
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [23_767, 2_461, 2_891]


@pytest.mark.slow
@pytest.mark.skipif(not WIKITEXT.is_dir(), reason="WikiText-2 is not in data/text/wikitext-2")
def test_real_wikitext2_passes_the_corpus_checks_in_seconds() -> None:
    splits = read_corpus(_spec(WIKITEXT))
    report = check_corpus(splits, CorpusChecksSpec())
    assert report.seconds < 60
    assert report.passed and report.decision == "continue"
    # headings ('= = History = =') repeat across articles: too short to judge, counted apart
    assert report.stats["train_exact_duplicates_short"] > 2_000
    assert report.stats["train_duplicate_share"] < 0.005
    assert all(report.stats[f"pii_{kind}_matches"] == 0 for kind in ("email", "phone", "card"))
    assert report.stats["validation_overlap_share"] == 0 == report.stats["test_overlap_share"]
