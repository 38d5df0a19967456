"""The generated-representation gate and the scores, on generators built to misbehave: one
that never draws class 7, one that draws real images (the ceiling), and the request rules."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from genops.core.config import load_config
from genops.core.serving.request import RequestError
from genops.workloads.image.config import ImageRunConfig
from genops.workloads.image.data import ImageSet, prepare_images
from genops.workloads.image.representation import generated_representation
from genops.workloads.image.request import parse_image_request
from genops.workloads.image.steps import score_generator
from genops.workloads.tabular.bias import failure_message
from tests.conftest import REPO


class RealImageGenerator:
    """Answers with real images of the class asked for; ``drop`` classes are answered with
    images of class ``instead``, and never appear among the unconditional samples."""

    def __init__(self, pool: ImageSet, drop: Sequence[int] = (), instead: int = 1) -> None:
        self.pool, self.drop, self.instead = pool, set(drop), instead

    def _draw(self, labels: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = []
        for label in labels:
            source = self.instead if label in self.drop else label
            idx = np.where(self.pool.labels == source)[0]
            out.append(self.pool.images[rng.choice(idx)])
        return np.stack(out)

    def sample(
        self,
        labels: Sequence[int] | np.ndarray,
        steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | None = None,
    ) -> np.ndarray:
        return self._draw(np.asarray(labels), seed or 0)

    def sample_unconditional(self, n: int, steps: int | None = None, seed: int | None = None):
        rng = np.random.default_rng(seed)
        keep = [c for c in range(self.pool.num_classes) if c not in self.drop]
        return self._draw(rng.choice(keep, size=n), (seed or 0) + 1)


@pytest.fixture(scope="module")
def digits() -> tuple[ImageRunConfig, ImageSet, ImageSet]:
    config = load_config(REPO / "pipelines" / "configs" / "digits.yaml")
    assert isinstance(config, ImageRunConfig)
    config = config.model_copy(
        update={
            "evaluation": config.evaluation.model_copy(
                update={"samples_per_class": 40, "unconditional_samples": 400}
            )
        }
    )
    data = prepare_images(config.dataset)
    return config, data.splits["train"], data.splits["holdout"]


def test_a_generator_that_drops_class_7_fails_the_gate_naming_it(digits) -> None:
    config, train, holdout = digits
    scores = score_generator(RealImageGenerator(train, drop=[7]), train, holdout, config)
    verdict = generated_representation(
        train.labels,
        scores.unconditional_labels,
        train.class_names,
        config.bias,
        conditional_accuracy=scores.conditional_accuracy,
    )
    assert not verdict.passed
    failed = {(r.metric, tuple(r.groups)) for r in verdict.failures}
    assert ("relative_share", ("7",)) in failed
    assert ("conditional_accuracy", ("7",)) in failed  # asked for 7, the classifier reads 1
    assert "class='7'" in failure_message(verdict)
    # the other classes are represented: no false alarms about them
    assert {g for m, (g,) in failed if m == "relative_share"} == {"7"}
    assert scores.per_class_cas["7"] < 0.2  # a classifier trained on it never learns 7
    assert scores.metrics["min_relative_share"] < 0.05


def test_a_generator_of_real_images_scores_like_the_real_baseline(digits) -> None:
    config, train, holdout = digits
    scores = score_generator(RealImageGenerator(train), train, holdout, config)
    m = scores.metrics
    assert m["cas"] > 0.9 and m["cas_ratio"] > 0.93
    assert m["domain_accuracy_conditional"] > 0.95
    # real training images against the holdout: the same distance as the baseline's order
    assert m["frechet_distance"] < 3 * m["frechet_distance_baseline"] + 1.0
    assert m["representation_tvd"] < 0.06
    verdict = generated_representation(
        train.labels, scores.unconditional_labels, train.class_names, config.bias,
        conditional_accuracy=scores.conditional_accuracy,
    )  # fmt: skip
    assert verdict.passed, failure_message(verdict)


def test_image_requests_are_checked_before_sampling() -> None:
    names = ["0", "1", "2"]
    req = parse_image_request({"counts": {"2": 2, "0": 1}, "seed": 4}, names, 10, 100)
    assert req.labels == [2, 2, 0] and req.seed == 4 and req.fmt == "png"
    assert parse_image_request({"classes": [1, "2"]}, names, 10, 100).labels == [1, 2]
    cases = [
        ({}, "give exactly one of 'classes'"),
        ({"classes": ["1"], "counts": {"1": 1}}, "give exactly one of 'classes'"),
        ({"classes": ["9"]}, "classes: unknown class '9'"),
        ({"classes": []}, "classes: expected a non-empty list"),
        ({"counts": {"1": -1}}, "counts.1: must be >= 0"),
        ({"counts": {"1": 0}}, "counts: asks for no images"),
        ({"counts": {"1": 11}}, "asks for 11 images; at most 10"),
        ({"classes": ["1"], "steps": 0}, "steps: must be >= 1 and <= 100"),
        ({"classes": ["1"], "steps": 1.5}, "steps: expected an integer"),
        ({"classes": ["1"], "guidance": 50}, "guidance: must be within [0, 20]"),
        ({"classes": ["1"], "guidance": "high"}, "guidance: expected a number"),
        ({"classes": ["1"], "format": "jpeg"}, "format: expected one of"),
        ({"classes": ["1"], "size": 3}, "unknown field(s) ['size']"),
    ]
    for body, message in cases:
        with pytest.raises(RequestError) as info:
            parse_image_request(body, names, 10, 100)
        assert message in str(info.value), (body, str(info.value))
