"""Requests to an image generator, from the REST body or the pyfunc input, checked before
any sampling: which classes (a list of class names, or counts per class), DDIM steps,
guidance scale and seed. Errors name the field and the rule."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genops.core.serving.request import InvalidNumber, RequestError, check_int, check_seed, excerpt

REQUEST_FIELDS = ("classes", "counts", "steps", "guidance", "seed", "format")
FORMATS = ("png", "array")
MAX_GUIDANCE = 20.0


@dataclass(frozen=True)
class ImageRequest:
    labels: list[int]  # class index per image, in the order they are answered
    steps: int | None
    guidance: float | None
    seed: int | None
    fmt: str = "png"


def _class_index(value: Any, class_names: Sequence[str], field: str) -> int:
    name = str(value)
    if isinstance(value, bool) or name not in class_names:
        raise RequestError(f"{field}: unknown class {excerpt(value)}; known: {list(class_names)}")
    return list(class_names).index(name)


def _optional_int(value: Any, field: str, low: int, high: int | None = None) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return check_int(value, field, low, high)


def _optional_float(value: Any, field: str, low: float, high: float) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, InvalidNumber):
        raise RequestError(f"{field}: {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise RequestError(f"{field}: expected a number, got {excerpt(value)}")
    number = float(value)
    if not low <= number <= high:
        raise RequestError(f"{field}: must be within [{low:g}, {high:g}], got {number:g}")
    return number


def parse_image_request(
    body: Mapping[str, Any], class_names: Sequence[str], max_images: int, max_steps: int
) -> ImageRequest:
    """``{"classes": ["3", "7"]}`` or ``{"counts": {"3": 4}}``, optional ``steps``,
    ``guidance``, ``seed``, ``format`` (png | array)."""
    unknown = sorted(set(body) - set(REQUEST_FIELDS))
    if unknown:
        raise RequestError(
            f"body: unknown field(s) {excerpt(unknown, 80)}; expected {list(REQUEST_FIELDS)}"
        )
    has_classes, has_counts = body.get("classes") is not None, body.get("counts") is not None
    if has_classes == has_counts:
        raise RequestError("body: give exactly one of 'classes' (a list) or 'counts' (an object)")
    labels: list[int] = []
    if has_classes:
        classes = body["classes"]
        if not isinstance(classes, list) or not classes:
            raise RequestError("classes: expected a non-empty list of class names")
        if len(classes) > max_images:  # before any name is looked up
            raise RequestError(
                f"body: asks for {len(classes)} images; at most {max_images} allowed"
            )
        labels = [_class_index(c, class_names, "classes") for c in classes]
    else:
        counts = body["counts"]
        if not isinstance(counts, dict) or not counts:
            raise RequestError("counts: expected a non-empty object {class: count}")
        wanted = {
            _class_index(name, class_names, "counts"): _optional_int(count, f"counts.{name}", 0)
            or 0
            for name, count in counts.items()
        }
        total = sum(wanted.values())  # checked before any list is built
        if total > max_images:
            raise RequestError(f"body: asks for {total} images; at most {max_images} allowed")
        for index, n in wanted.items():
            labels.extend([index] * n)
        if not labels:
            raise RequestError("counts: asks for no images")
    if len(labels) > max_images:
        raise RequestError(f"body: asks for {len(labels)} images; at most {max_images} allowed")
    fmt = body.get("format") or "png"
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise RequestError(f"format: expected one of {list(FORMATS)}, got {excerpt(fmt)}")
    return ImageRequest(
        labels=labels,
        steps=_optional_int(body.get("steps"), "steps", 1, max_steps),
        guidance=_optional_float(body.get("guidance"), "guidance", 0.0, MAX_GUIDANCE),
        seed=check_seed(body.get("seed")),
        fmt=str(fmt),
    )


def to_unit(images: np.ndarray) -> np.ndarray:
    """Model space [-1, 1] -> [0, 1]."""
    return ((np.clip(images, -1.0, 1.0) + 1.0) / 2.0).astype(np.float32)


def png_base64(image: np.ndarray) -> str:
    """One (C, H, W) image in [-1, 1] as a base64 8-bit PNG (grey or RGB)."""
    from PIL import Image

    pixels = np.round(to_unit(image) * 255.0).astype(np.uint8)
    array = pixels[0] if pixels.shape[0] == 1 else np.transpose(pixels, (1, 2, 0))
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def decode_png(text: str) -> np.ndarray:
    """A base64 PNG back to (C, H, W) uint8."""
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(text))) as img:
        array = np.asarray(img)
    return array[None] if array.ndim == 2 else np.transpose(array, (2, 0, 1))
