"""Hostile bodies against a real model-server process of every workload: a hand-written
corpus (each body answered 4xx, with the status it must have) and random mutations from
Hypothesis (never a 5xx). After every answer the same keep-alive connection
(``http.client.HTTPConnection``) must carry the next request: the test sends ``/health`` on
it, and a good request at the end.

One tiny model per workload is trained and registered, and the three servers start
together (``serving_fixtures``)."""

from __future__ import annotations

import http.client
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.serving_fixtures import (
    ServerProcess,
    register_image,
    register_tabular,
    register_text,
    start_server,
    use_store,
    wait_healthy,
)

MAX_ROWS = 20
MAX_BODY = 1_048_576
#: No error message may be longer than this (the server's backstop cut is 2,000).
MAX_ERROR_BYTES = 2_100
# 100 fixed examples per workload in the suite (a few seconds each); a deeper, random search:
# GENOPS_FUZZ_EXAMPLES=2000 pytest tests/unit/test_server_fuzz.py -k random
HYPOTHESIS_EXAMPLES = int(os.environ.get("GENOPS_FUZZ_EXAMPLES", "100"))
DERANDOMIZE = "GENOPS_FUZZ_EXAMPLES" not in os.environ

GOOD = {
    "tabular": {"num_rows": 3, "seed": 1, "conditions": {"group": "a"}},
    "image": {"classes": ["ring", "dot"], "seed": 1, "steps": 2},
    "text": {"prompt": "The", "max_new_tokens": 4, "seed": 1},
}
FIELDS = {
    "tabular": ["num_rows", "seed", "conditions", "format"],
    "image": ["classes", "counts", "steps", "guidance", "seed", "format"],
    "text": [
        *("prompt", "prompts", "max_new_tokens", "temperature", "top_k", "top_p", "seed"),
        *("stop", "stream"),
    ],
}


@dataclass(frozen=True)
class Hostile:
    """One body, its content type (None: no header), the status it must get."""

    name: str
    body: bytes
    status: int = 400
    content_type: str | None = "application/json"
    chunked: bool = False


def _with(workload: str, field: str, literal: str) -> bytes:
    """The workload's good body with ``field`` set to a raw JSON literal (which
    ``json.dumps`` could not write: 1e400, NaN, a 5,000-digit integer)."""
    body = {k: v for k, v in GOOD[workload].items() if k != field}
    head = json.dumps(body)[:-1]
    return f'{head}, "{field}": {literal}}}'.encode()


def _dump(value: Any) -> bytes:
    return json.dumps(value).encode()


def generic_corpus(workload: str) -> list[Hostile]:
    """Bodies every workload must refuse, whatever its fields."""
    good = _dump(GOOD[workload])
    deep = 200_000
    return [
        Hostile("empty body", b""),
        Hostile("blank body", b"  \n "),
        Hostile("cut JSON", good[:-3]),
        Hostile("null", b"null"),
        Hostile("a number", b"42"),
        Hostile("a string", b'"hello"'),
        Hostile("an array of the good body", b"[" + good + b"]"),
        Hostile("array nested 200,000 deep", b"[" * deep + b"]" * deep),
        Hostile("objects nested 100,000 deep", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
        Hostile("array nested 33 deep (one past the limit)", b"[" * 33 + b"]" * 33),
        Hostile("NaN literal", b'{"x": NaN}'),
        Hostile("Infinity literal", b'{"x": -Infinity}'),
        Hostile("duplicate keys", good[:-1] + b", " + good[1:]),
        Hostile("invalid UTF-8", b'{"x": "\xff\xfe\xfd"}'),
        Hostile("raw control character in a string", b'{"x": "a\x00b"}'),
        Hostile("lone surrogate escape", b'{"\\ud800": 1}'),
        Hostile("UTF-8 BOM then an empty object", b"\xef\xbb\xbf{}"),
        Hostile("unknown field", _dump({**GOOD[workload], "bogus": 1})),
        Hostile("unknown field named by 900 KB", _dump({**GOOD[workload], "k" * 900_000: 1})),
        Hostile("array of 200,000 numbers", b"[" + b"1," * 199_999 + b"1]"),
        Hostile("empty object", b"{}"),
        Hostile("2 MB body", b"{" + b" " * 2_000_000 + b"}", status=413),
        Hostile("2 MB chunked body", b" " * 2_000_000, status=413, chunked=True),
        Hostile("just over the cap", b" " * (MAX_BODY - 1) + b"{}", status=413),
        Hostile("text/plain", good, status=415, content_type="text/plain"),
        Hostile(
            "form encoded", b"a=1", status=415, content_type="application/x-www-form-urlencoded"
        ),
        Hostile("XML", b"<a/>", status=415, content_type="application/xml"),
        Hostile("no content type, not JSON", b"num_rows=5", content_type=None),
    ]


def _numbers(workload: str, field: str) -> list[Hostile]:
    """The number attacks the issue names, on one integer field."""
    return [
        Hostile(f"{field} 1e400", _with(workload, field, "1e400")),
        Hostile(f"{field} -1e400", _with(workload, field, "-1e400")),
        Hostile(f"{field} NaN", _with(workload, field, "NaN")),
        Hostile(f"{field} Infinity", _with(workload, field, "Infinity")),
        Hostile(f"{field} 5,000-digit integer", _with(workload, field, "9" * 5000)),
        Hostile(f"{field} 21-digit integer", _with(workload, field, "1" + "0" * 20)),
        Hostile(f"{field} 2**64", _with(workload, field, str(2**64))),
        Hostile(f"{field} fraction", _with(workload, field, "1.5")),
        Hostile(f"{field} 1e300", _with(workload, field, "1e300")),
        Hostile(f"{field} negative", _with(workload, field, "-1")),
        Hostile(f"{field} true", _with(workload, field, "true")),
        Hostile(f"{field} string", _with(workload, field, '"5"')),
        Hostile(f"{field} list", _with(workload, field, "[5]")),
        Hostile(f"{field} object", _with(workload, field, '{"n": 5}')),
    ]


def specific_corpus(workload: str) -> list[Hostile]:
    big = "x" * 900_000
    if workload == "tabular":
        return [
            *_numbers(workload, "num_rows"),
            *_numbers(workload, "seed"),
            Hostile("num_rows missing", _dump({"seed": 1})),
            Hostile("num_rows 0", _dump({"num_rows": 0})),
            Hostile("num_rows above the cap", _dump({"num_rows": MAX_ROWS + 1})),
            Hostile("seed 2**32", _dump({"num_rows": 2, "seed": 2**32})),
            Hostile(
                "condition value of 900 KB", _dump({"num_rows": 2, "conditions": {"group": big}})
            ),
            Hostile("condition column of 900 KB", _dump({"num_rows": 2, "conditions": {big: "a"}})),
            Hostile("condition string of 900 KB", _dump({"num_rows": 2, "conditions": big})),
            Hostile(
                "conditions: a JSON string nested 100,000 deep",
                _dump({"num_rows": 2, "conditions": '{"a":' + "[" * 100_000}),
            ),
            Hostile(
                "conditions: a JSON string with NaN",
                _dump({"num_rows": 2, "conditions": '{"group": NaN}'}),
            ),
            Hostile(
                "condition value a list", _dump({"num_rows": 2, "conditions": {"group": ["a"]}})
            ),
            Hostile("condition value null", _dump({"num_rows": 2, "conditions": {"group": None}})),
            Hostile("condition value 1e400", _with(workload, "conditions", '{"group": 1e400}')),
            Hostile("conditions a number", _dump({"num_rows": 2, "conditions": 5})),
            Hostile("conditions not col=value", _dump({"num_rows": 2, "conditions": "group"})),
            Hostile("format a list", _dump({"num_rows": 2, "format": ["records"]})),
            Hostile("format of 900 KB", _dump({"num_rows": 2, "format": big})),
        ]
    if workload == "image":
        return [
            *_numbers(workload, "steps"),
            *_numbers(workload, "seed"),
            Hostile("counts 1e400", b'{"counts": {"ring": 1e400}}'),
            Hostile("counts fraction", _dump({"counts": {"ring": 1.5}})),
            Hostile("counts 10**19", _dump({"counts": {"ring": 10**19}})),
            Hostile("counts negative", _dump({"counts": {"ring": -1}})),
            Hostile("counts unknown class", _dump({"counts": {"cat": 1}})),
            Hostile("counts a list", _dump({"counts": ["ring"]})),
            Hostile("classes and counts", _dump({"classes": ["ring"], "counts": {"ring": 1}})),
            Hostile("classes empty", _dump({"classes": []})),
            Hostile("classes a string", _dump({"classes": "ring"})),
            Hostile("classes of null", _dump({"classes": [None]})),
            Hostile("classes nested", _dump({"classes": [["ring"]]})),
            Hostile("class name of 900 KB", _dump({"classes": [big]})),
            Hostile("100,000 classes", _dump({"classes": ["ring"] * 100_000})),
            Hostile("guidance 1e400", _with(workload, "guidance", "1e400")),
            Hostile("guidance NaN", _with(workload, "guidance", "NaN")),
            Hostile("guidance a string", _dump({"classes": ["ring"], "guidance": "high"})),
            Hostile("guidance 1e308", _dump({"classes": ["ring"], "guidance": 1e308})),
            Hostile("format gif", _dump({"classes": ["ring"], "format": "gif"})),
            Hostile("format an object", _dump({"classes": ["ring"], "format": {"a": 1}})),
        ]
    return [
        *_numbers(workload, "max_new_tokens"),
        *_numbers(workload, "seed"),
        *_numbers(workload, "top_k"),
        Hostile("temperature NaN", _with(workload, "temperature", "NaN")),
        Hostile("temperature 1e400", _with(workload, "temperature", "1e400")),
        Hostile("temperature negative", _dump({"prompt": "a", "temperature": -1})),
        Hostile("top_p 0", _dump({"prompt": "a", "top_p": 0})),
        Hostile("prompt a number", _dump({"prompt": 5})),
        Hostile("prompt and prompts", _dump({"prompt": "a", "prompts": ["b"]})),
        Hostile("prompts empty", _dump({"prompts": []})),
        Hostile("prompts of numbers", _dump({"prompts": [1, 2]})),
        Hostile("prompt of 900 KB", _dump({"prompt": big})),
        Hostile("1,000 prompts", _dump({"prompts": ["a"] * 1000})),
        Hostile("lone surrogate prompt", b'{"prompt": "\\udc80"}'),
        Hostile("stop of numbers", _dump({"prompt": "a", "stop": [1]})),
        Hostile("stop of 900 KB", _dump({"prompt": "a", "stop": [big]})),
        Hostile("stream a string", _dump({"prompt": "a", "stream": "yes"})),
        Hostile("stream of several prompts", _dump({"prompts": ["a", "b"], "stream": True})),
    ]


def corpus(workload: str) -> list[Hostile]:
    return generic_corpus(workload) + specific_corpus(workload)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    workdir: Path = tmp_path_factory.mktemp("server-fuzz")
    uri = use_store(workdir, "serving-fixtures")
    uris = {
        "tabular": f"models:/fuzz-tabular/{register_tabular(workdir)[0]}",
        "image": f"models:/fuzz-image/{register_image(workdir)}",
        "text": f"models:/fuzz-text/{register_text(workdir)}",
    }
    started = {
        name: start_server(model, uri, workdir, "--follow-interval", "0", max_rows=MAX_ROWS)
        for name, model in uris.items()
    }  # the three start together
    try:
        for server in started.values():
            wait_healthy(server)
        yield started
    finally:
        for server in started.values():
            server.stop()


def send(conn: http.client.HTTPConnection, case: Hostile) -> tuple[int, bytes]:
    headers = {} if case.content_type is None else {"Content-Type": case.content_type}
    if case.chunked:
        pieces = [case.body[i : i + 65_536] for i in range(0, len(case.body), 65_536)]
        conn.request("POST", "/generate", body=iter(pieces), headers=headers, encode_chunked=True)
    else:
        conn.request("POST", "/generate", body=case.body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def still_usable(conn: http.client.HTTPConnection) -> None:
    conn.request("GET", "/health")
    response = conn.getresponse()
    assert (response.status, json.loads(response.read())) == (200, {"status": "ok"})


def good_request(conn: http.client.HTTPConnection, workload: str) -> None:
    status, body = send(conn, Hostile("good", _dump(GOOD[workload])))
    assert status == 200, body[:500]


def check_error(status: int, body: bytes, case: str) -> str:
    assert len(body) <= MAX_ERROR_BYTES, f"{case}: a {len(body):,}-byte error echoes the input"
    message = json.loads(body)["error"]
    assert isinstance(message, str) and message, case
    return message


@pytest.mark.parametrize("workload", ["tabular", "image", "text"])
def test_hostile_corpus_is_answered_4xx_on_one_connection(
    servers: dict[str, ServerProcess], workload: str
) -> None:
    server = servers[workload]
    conn = server.connection()
    statuses: Counter[int] = Counter()
    try:
        good_request(conn, workload)
        for case in corpus(workload):
            status, body = send(conn, case)
            statuses[status] += 1
            assert status == case.status, f"{case.name}: {status} {body[:300]!r}"
            message = check_error(status, body, case.name)
            assert "internal error" not in message, case.name
            still_usable(conn)  # the same connection, after every error
        good_request(conn, workload)
    finally:
        conn.close()
    assert server.process.poll() is None
    assert sum(statuses.values()) == len(corpus(workload)) and not any(s >= 500 for s in statuses)
    print(f"{workload}: {len(corpus(workload))} hostile bodies -> {dict(sorted(statuses.items()))}")


def test_errors_name_the_field_and_cut_the_input(servers: dict[str, ServerProcess]) -> None:
    conn = servers["tabular"].connection()
    try:
        expected = {
            _with("tabular", "seed", "1e400"): "seed: 1e400",
            _with("tabular", "num_rows", "1e400"): "num_rows: 1e400",
            _with("tabular", "seed", "9" * 5000): "seed: 999999999999...9999 (a 5,000-digit",
            _with("tabular", "seed", "1.5"): "seed: expected an integer, got a fraction 1.5",
            _with("tabular", "num_rows", "2.5"): "num_rows: expected an integer, got 2.5",
            _with("tabular", "seed", str(2**64)): "seed: must be >= 0 and <= 4294967295",
            _with("tabular", "conditions", '{"group": NaN}'): "conditions.group: NaN",
            b"[" * 200_000 + b"]" * 200_000: "body: JSON nested 200,000 levels deep; at most 32",
            _dump({"num_rows": 2, "conditions": {"group": "x" * 900_000}}): (
                "conditions: unknown value 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... "
                "(900,000 characters) for column 'group'"
            ),
        }
        for body, message in expected.items():
            status, answer = send(conn, Hostile("case", body))
            assert status == 400 and message in json.loads(answer)["error"], answer[:300]
        status, answer = send(conn, Hostile("big", b" " * 2_000_000, status=413))
        assert status == 413 and "at most 1,048,576" in json.loads(answer)["error"]
        status, answer = send(conn, Hostile("plain", b"{}", content_type="text/plain"))
        assert (status, json.loads(answer)["error"]) == (
            415,
            "content-type: expected application/json, got 'text/plain'",
        )
        good_request(conn, "tabular")
    finally:
        conn.close()


# -- random mutations ------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=0, max_value=30)  # often within a field's range
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_near = (
    st.integers(min_value=-2, max_value=40)
    | st.floats(min_value=-1.0, max_value=40.0)
    | st.sampled_from(["a", "b", "ring", "dot", "The", "records", "columns", "png", "array", ""])
    | st.lists(st.sampled_from(["a", "ring", "bar", "The", "x"]), max_size=3)
    | st.dictionaries(st.sampled_from(["group", "ring", "color"]), st.integers(0, 3), max_size=2)
    | st.booleans()
)
_literals = st.sampled_from(
    [
        *("1e400", "-1e400", "NaN", "Infinity", "9" * 5000, "1.5", "-0", "1e-400", "0x10"),
        *("01", "1_000", "[", "{", '"', "[]", "{}", "null", "true", "\\u0000", '"\\ud800"'),
    ]
)


@st.composite
def mutated_bodies(draw: st.DrawFn, workload: str) -> Hostile:
    good = dict(GOOD[workload])
    kind = draw(st.sampled_from(["near miss", "field value", "raw literal", "bytes", "json value"]))
    if kind == "near miss":  # fields set to values near their ranges: some are served
        for field in draw(st.lists(st.sampled_from(FIELDS[workload]), max_size=3, unique=True)):
            good[field] = draw(_near)
        return Hostile(kind, json.dumps(good, allow_nan=True).encode())
    if kind == "field value":  # a field (known or not) set to any JSON value
        field = draw(st.sampled_from([*FIELDS[workload], "junk"]))
        if draw(st.booleans()):
            good.pop(draw(st.sampled_from(list(good))), None)
        good[field] = draw(_values)
        return Hostile(kind, json.dumps(good, allow_nan=True).encode())
    if kind == "raw literal":  # text json.dumps cannot write, in a field's place
        field = draw(st.sampled_from(FIELDS[workload]))
        return Hostile(kind, _with(workload, field, draw(_literals)))
    if kind == "bytes":  # the good body with bytes deleted, inserted or replaced
        body = bytearray(_dump(good))
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(body)))
            op = draw(st.sampled_from(["delete", "insert", "replace"]))
            if op == "delete":
                del body[at : at + draw(st.integers(1, 8))]
            elif op == "insert":
                body[at:at] = draw(st.binary(min_size=1, max_size=8))
            elif at < len(body):
                body[at] = draw(st.integers(0, 255))
        return Hostile(kind, bytes(body))
    return Hostile(kind, json.dumps(draw(_values), allow_nan=True).encode())


@pytest.mark.parametrize("workload", ["tabular", "image", "text"])
def test_random_mutations_never_get_a_5xx(servers: dict[str, ServerProcess], workload: str) -> None:
    conn = servers[workload].connection()
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=HYPOTHESIS_EXAMPLES,
        deadline=None,
        derandomize=DERANDOMIZE,  # the suite: the same examples every run
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=mutated_bodies(workload))
    def one(case: Hostile) -> None:
        status, body = send(conn, case)
        statuses[status] += 1
        assert status < 500, f"{case.body[:200]!r}: {status} {body[:300]!r}"
        if status >= 400:
            check_error(status, body, case.name)
        still_usable(conn)

    try:
        one()
        good_request(conn, workload)
    finally:
        conn.close()
    assert sum(statuses.values()) >= HYPOTHESIS_EXAMPLES
    assert set(statuses) <= {200, 400, 413, 415, 422}, statuses
    seen = dict(sorted(statuses.items()))
    print(f"{workload}: {sum(statuses.values())} Hypothesis examples -> {seen}")
