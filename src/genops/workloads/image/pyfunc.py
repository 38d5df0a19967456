"""The diffusion model as an MLflow pyfunc: a request in, images out.

Input, one row per class asked for: ``label`` (string, a class name), optional ``count``
(long, default 1), ``steps`` (long, DDIM steps), ``guidance`` (double, classifier-free
guidance scale) and ``seed`` (long). Output, one row per image: ``label``, ``channels``,
``height``, ``width``, ``pixels`` (the image flattened, values in [0, 1]) and ``png_base64``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, Schema

from genops.core.serving.request import RequestError
from genops.workloads.image.request import ImageRequest, parse_image_request, png_base64, to_unit

GENERATOR_ARTIFACT = "generator"
DEFAULT_MAX_IMAGES = 1024


class ImageGeneratorModel(PythonModel):
    """Wraps a saved :class:`genops.workloads.image.diffusion.DiffusionModel`."""

    #: The workload whose serving adapter the model server uses for this model.
    workload = "image-diffusion"

    def load_context(self, context: Any) -> None:
        from genops.workloads.image.diffusion import DiffusionModel

        self.generator = DiffusionModel.load(context.artifacts[GENERATOR_ARTIFACT])
        self.max_images = int(os.environ.get("GENOPS_MAX_IMAGES", DEFAULT_MAX_IMAGES))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if isinstance(model_input, dict):
            model_input = pd.DataFrame([model_input])
        request = frame_request(
            model_input, self.generator.class_names, self.max_images, self.generator.spec.timesteps
        )
        images = self.generator.sample(
            request.labels, steps=request.steps, guidance_scale=request.guidance, seed=request.seed
        )
        return images_frame(images, request.labels, self.generator.class_names)


def frame_request(
    frame: pd.DataFrame, class_names: list[str], max_images: int, max_steps: int
) -> ImageRequest:
    """All rows of a pyfunc input as one request (one cap on the total, one sampling pass):
    images in row order; the rows must agree on steps, guidance and seed."""

    def value(row: pd.Series, key: str) -> Any:
        item = row.get(key)
        return None if item is None or (isinstance(item, float) and pd.isna(item)) else item

    labels: list[int] = []
    settings: set[tuple[Any, Any, Any]] = set()
    for position, (_, row) in enumerate(frame.iterrows()):
        count = value(row, "count")
        body = {
            "counts": {str(value(row, "label")): 1 if count is None else count},
            "steps": value(row, "steps"),
            "guidance": value(row, "guidance"),
            "seed": value(row, "seed"),
        }
        try:
            one = parse_image_request(body, class_names, max_images - len(labels), max_steps)
        except RequestError as exc:
            raise RequestError(f"row {position}: {exc}") from exc
        labels.extend(one.labels)
        settings.add((one.steps, one.guidance, one.seed))
    if not labels:
        raise RequestError("input: no rows")
    if len(settings) > 1:
        raise RequestError("input: all rows must ask for the same steps, guidance and seed")
    steps, guidance, seed = settings.pop()
    return ImageRequest(labels=labels, steps=steps, guidance=guidance, seed=seed)


def images_frame(images: np.ndarray, labels: list[int], class_names: list[str]) -> pd.DataFrame:
    unit = to_unit(images)
    _, channels, height, width = images.shape
    return pd.DataFrame(
        {
            "label": [class_names[i] for i in labels],
            "channels": [channels] * len(labels),
            "height": [height] * len(labels),
            "width": [width] * len(labels),
            "pixels": [img.reshape(-1).astype(float).tolist() for img in unit],
            "png_base64": [png_base64(img) for img in images],
        }
    )


def input_schema() -> Schema:
    return Schema(
        [
            ColSpec("string", "label"),
            ColSpec("long", "count", required=False),
            ColSpec("long", "steps", required=False),
            ColSpec("double", "guidance", required=False),
            ColSpec("long", "seed", required=False),
        ]
    )


def log_generator(generator_dir: str | Path, example_output: pd.DataFrame) -> Any:
    """Log the pyfunc model into the active run; returns MLflow's ModelInfo."""
    from mlflow.models import infer_signature

    from genops.core.serving.pyfunc import log_pyfunc

    outputs = infer_signature(model_output=example_output).outputs
    return log_pyfunc(
        ImageGeneratorModel(),
        {GENERATOR_ARTIFACT: str(generator_dir)},
        ModelSignature(inputs=input_schema(), outputs=outputs),
        pd.DataFrame(
            {
                "label": [str(example_output["label"].iloc[0])],
                "count": [2],
                "steps": [10],
                "guidance": [2.0],
                "seed": [0],
            }
        ),
        extra_requirements=("pillow",),
    )
