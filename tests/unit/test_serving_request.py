from __future__ import annotations

import pytest

from genops.core.serving.request import RequestError
from genops.workloads.tabular.request import parse_conditions, validate_request

CATS = {"sex": ["Female", "Male"], "race": ["Black", "White"]}


def test_condition_forms() -> None:
    assert parse_conditions("sex=Female, race=White") == {"sex": "Female", "race": "White"}
    assert parse_conditions('{"sex": "Male"}') == {"sex": "Male"}
    assert parse_conditions({"sex": "Male"}) == {"sex": "Male"}
    assert parse_conditions("") == {} and parse_conditions(None) == {}
    assert parse_conditions(float("nan")) == {}


def test_valid_request() -> None:
    req = validate_request(10, "sex=Female", 3, CATS)
    assert (req.num_rows, req.conditions, req.seed) == (10, {"sex": "Female"}, 3)


@pytest.mark.parametrize(
    ("rows", "conditions", "seed", "message"),
    [
        (0, None, None, "num_rows: must be positive"),
        (-5, None, None, "num_rows: must be positive"),
        ("ten", None, None, "num_rows: expected an integer"),
        (2.5, None, None, "num_rows: expected an integer"),
        (10**9, None, None, "above the limit"),
        (5, "planet=Mars", None, "unknown column 'planet'"),
        (5, "sex=Other", None, "unknown value 'Other' for column 'sex'"),
        (5, "sex", None, "not of the form column=value"),
        (5, "{bad json", None, "not valid JSON"),
        (5, "[1, 2]", None, "not of the form"),
        (5, None, "x", "seed: expected an integer"),
    ],
)
def test_bad_requests_say_what_is_wrong(
    rows: object, conditions: object, seed: object, message: str
) -> None:
    with pytest.raises(RequestError, match=message):
        validate_request(rows, conditions, seed, CATS)
