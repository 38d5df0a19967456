"""Image data sets: load (sklearn digits, a folder of PNGs in class sub-folders, an ``.npz``;
local or ``s3://``), validate against the spec, scale to [-1, 1], split and store.

Every problem is reported with where it is (the file, or the array and index), which rule it
breaks and what was found; validation collects all of them before failing.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from genops.workloads.image.config import ImageDatasetSpec, ImageSplitSpec

IMAGE_SUFFIXES = (".png",)


class ImageDataError(ValueError):
    """Images that cannot be read or do not follow the spec."""


@dataclass
class RawImages:
    """Images as read, before scaling: (N, C, H, W) float64 pixel values and int labels."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    origins: list[str] = field(default_factory=list)  # where each image came from, for errors
    source: str = ""

    def origin(self, index: int) -> str:
        return self.origins[index] if self.origins else f"{self.source}[{index}]"


@dataclass
class ImageSet:
    """A split ready for training: (N, C, H, W) float32 in [-1, 1] and int64 labels."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def counts(self) -> dict[str, int]:
        bins = np.bincount(self.labels, minlength=self.num_classes)
        return {name: int(n) for name, n in zip(self.class_names, bins, strict=True)}

    def save(self, path: str | Path) -> None:
        """Atomic write of an ``.npz`` (a reader never sees half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                images=self.images.astype(np.float32),
                labels=self.labels.astype(np.int64),
                class_names=np.array(self.class_names, dtype=str),
            )
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> ImageSet:
        with np.load(Path(path), allow_pickle=False) as data:
            return cls(
                images=data["images"].astype(np.float32),
                labels=data["labels"].astype(np.int64),
                class_names=[str(n) for n in data["class_names"]],
            )


# ---------------------------------------------------------------- reading


def _read_bytes(uri: str) -> bytes:
    from genops.core.io import DataLoadError, read_bytes

    try:
        return read_bytes(uri)
    except DataLoadError as exc:
        raise ImageDataError(str(exc)) from exc


def _load_digits() -> RawImages:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float64)[:, None, :, :]  # (1797, 1, 8, 8), values 0..16
    names = [str(int(n)) for n in digits.target_names]
    return RawImages(images, digits.target.astype(np.int64), names, source="sklearn:digits")


def _to_nchw(array: np.ndarray, spec: ImageDatasetSpec, origin: str) -> np.ndarray:
    """(N,H,W), (N,H,W,C) or (N,C,H,W) -> (N,C,H,W); the spec decides which is which."""
    size, channels = spec.image_size, spec.channels
    if array.ndim == 3:
        array = array[:, None, :, :]
    elif array.ndim == 4 and array.shape[1:] != (channels, size, size):
        if array.shape[3] in (1, 3) and array.shape[1:3] == (size, size):
            array = np.transpose(array, (0, 3, 1, 2))
    else:
        if array.ndim != 4:
            raise ImageDataError(
                f"{origin}: 'images' must have 3 or 4 dimensions (N,H,W[,C] or N,C,H,W), "
                f"got shape {array.shape}"
            )
    return array


def _load_npz(spec: ImageDatasetSpec) -> RawImages:
    uri = spec.source
    try:
        data = np.load(io.BytesIO(_read_bytes(uri)), allow_pickle=False)
    except ImageDataError:
        raise
    except Exception as exc:
        raise ImageDataError(f"{uri}: not a readable .npz file: {exc}") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ImageDataError(f"{uri}: not an .npz archive (a single .npy array?)")
    missing = [k for k in ("images", "labels") if k not in data.files]
    if missing:
        raise ImageDataError(
            f"{uri}: missing array(s) {missing}; an image .npz needs 'images' and 'labels' "
            f"(found {sorted(data.files)})"
        )
    images = np.asarray(data["images"])
    labels = np.asarray(data["labels"])
    if not np.issubdtype(images.dtype, np.number):
        raise ImageDataError(f"{uri}: 'images' must be numeric, got dtype {images.dtype}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ImageDataError(
            f"{uri}: 'labels' must be 1-D with one label per image: {labels.shape} labels "
            f"for {len(images)} images"
        )
    images = _to_nchw(images.astype(np.float64), spec, uri)
    if np.issubdtype(labels.dtype, np.integer):
        names = spec.label_names or [str(i) for i in range(int(labels.max(initial=-1)) + 1)]
        int_labels = labels.astype(np.int64)
        unknown = sorted({int(v) for v in int_labels if v < 0 or v >= len(names)})
        if unknown:
            raise ImageDataError(
                f"{uri}: labels {unknown[:10]} are outside the label set 0..{len(names) - 1} "
                f"({names})"
            )
    else:
        text = labels.astype(str)
        names = spec.label_names or sorted(set(text.tolist()))
        index = {n: i for i, n in enumerate(names)}
        unknown_names = sorted(set(text.tolist()) - set(index))
        if unknown_names:
            raise ImageDataError(
                f"{uri}: labels {unknown_names[:10]} are not in dataset.label_names {names}"
            )
        int_labels = np.array([index[t] for t in text], dtype=np.int64)
    return RawImages(images, int_labels, list(names), source=uri)


def _list_folder(root: str) -> list[tuple[str, str]]:
    """(class folder name, file uri) of every image under ``root/<class>/``."""
    found: list[tuple[str, str]] = []
    if root.startswith("s3://"):
        from genops.core.io import _s3_client

        parsed = urlparse(root)
        prefix = parsed.path.lstrip("/").rstrip("/") + "/"
        try:
            pages = _s3_client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=parsed.netloc, Prefix=prefix):
                for obj in page.get("Contents", []):
                    rest = obj["Key"][len(prefix) :]
                    parts = rest.split("/")
                    if len(parts) == 2 and parts[1].lower().endswith(IMAGE_SUFFIXES):
                        found.append((parts[0], f"s3://{parsed.netloc}/{obj['Key']}"))
        except Exception as exc:
            raise ImageDataError(f"{root}: cannot list objects in S3: {exc}") from exc
        return sorted(found)
    path = Path(root)
    if not path.is_dir():
        raise ImageDataError(f"{root}: folder not found")
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        for file in sorted(sub.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                found.append((sub.name, str(file)))
    return found


def _load_folder(spec: ImageDatasetSpec) -> RawImages:
    from PIL import Image, UnidentifiedImageError

    root = spec.source
    files = _list_folder(root)
    folders = sorted({name for name, _ in files})
    names = spec.label_names or folders
    if not files:
        raise ImageDataError(f"{root}: no PNG images found in class sub-folders (<class>/*.png)")
    unknown = [f for f in folders if f not in names]
    if unknown:
        raise ImageDataError(
            f"{root}: sub-folder(s) {unknown} are not in dataset.label_names {names}"
        )
    index = {n: i for i, n in enumerate(names)}
    mode = "L" if spec.channels == 1 else "RGB"
    images, labels, origins, problems = [], [], [], []
    for name, uri in files:
        try:
            with Image.open(io.BytesIO(_read_bytes(uri))) as img:
                bands = len(img.getbands()) - (1 if "A" in img.getbands() else 0)
                if bands != spec.channels and not (img.mode == "P" and spec.channels == 3):
                    problems.append(
                        f"{uri}: has {bands} channel(s) (mode {img.mode}), the spec says "
                        f"dataset.channels = {spec.channels}"
                    )
                    continue
                array = np.asarray(img.convert(mode), dtype=np.float64)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            problems.append(f"{uri}: not a readable image: {exc}")
            continue
        array = array[None] if array.ndim == 2 else np.transpose(array, (2, 0, 1))
        images.append(array)
        labels.append(index[name])
        origins.append(uri)
    shapes = {a.shape for a in images}
    expected = (spec.channels, spec.image_size, spec.image_size)
    for array, uri in zip(images, origins, strict=True):
        if array.shape != expected:
            problems.append(
                f"{uri}: image is {array.shape[2]}x{array.shape[1]} pixels, the spec says "
                f"dataset.image_size = {spec.image_size}"
            )
    if problems:
        raise ImageDataError(_problem_text(root, problems))
    stacked = np.stack(images) if shapes else np.zeros((0, *expected))
    return RawImages(stacked, np.array(labels, dtype=np.int64), list(names), origins, root)


def read_images(spec: ImageDatasetSpec) -> RawImages:
    """Read the images the spec names, as they are (no scaling)."""
    fmt = spec.resolved_format
    if fmt == "sklearn":
        if spec.source != "sklearn:digits":
            raise ImageDataError(
                f"dataset.source: unknown bundled data set {spec.source!r}; "
                "the one bundled is 'sklearn:digits'"
            )
        raw = _load_digits()
        if spec.label_names is not None:
            if len(spec.label_names) != len(raw.class_names):
                raise ImageDataError(
                    f"dataset.label_names: digits has {len(raw.class_names)} classes, "
                    f"{len(spec.label_names)} names given"
                )
            raw.class_names = list(spec.label_names)
        return raw
    if fmt == "npz":
        return _load_npz(spec)
    return _load_folder(spec)


# ---------------------------------------------------------------- validation


def _problem_text(origin: str, problems: list[str], limit: int = 20) -> str:
    shown = problems[:limit]
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{origin}: {len(problems)} problem(s):\n  " + "\n  ".join(shown) + more


def validate(raw: RawImages, spec: ImageDatasetSpec) -> None:
    """Shapes, value ranges, label set and images per class; raises with every problem."""
    problems: list[str] = []
    expected = (spec.channels, spec.image_size, spec.image_size)
    if len(raw.images) == 0:
        raise ImageDataError(f"{raw.source}: no images")
    if raw.images.shape[1:] != expected:
        problems.append(
            f"images have shape {raw.images.shape[1:]} (C,H,W); the spec says {expected} "
            "(dataset.channels, dataset.image_size)"
        )
    else:
        low, high = spec.value_range
        flat = raw.images.reshape(len(raw.images), -1)
        bad_finite = np.where(~np.isfinite(flat).all(axis=1))[0]
        for i in bad_finite[:5]:
            problems.append(f"{raw.origin(int(i))}: NaN or infinite pixel values")
        with np.errstate(invalid="ignore"):
            outside = np.where(((flat < low) | (flat > high)).any(axis=1))[0]
        for i in outside[:5]:
            row = flat[int(i)]
            problems.append(
                f"{raw.origin(int(i))}: pixel values in [{np.nanmin(row):g}, {np.nanmax(row):g}] "
                f"outside dataset.value_range [{low:g}, {high:g}]"
            )
        if len(outside) > 5:
            problems.append(f"... {len(outside)} images in all have values outside the range")
    counts = np.bincount(raw.labels, minlength=len(raw.class_names))
    few = [
        f"'{name}' has {int(n)}"
        for name, n in zip(raw.class_names, counts, strict=True)
        if n < spec.min_images_per_class
    ]
    if few:
        problems.append(
            f"classes under dataset.min_images_per_class ({spec.min_images_per_class}): "
            + ", ".join(few)
        )
    if problems:
        raise ImageDataError(_problem_text(raw.source, problems))


# ---------------------------------------------------------------- scaling, sampling, split


def scale(images: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Pixel values in ``value_range`` -> float32 in [-1, 1]."""
    low, high = value_range
    return ((images - low) / (high - low) * 2.0 - 1.0).astype(np.float32)


def unscale(images: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    low, high = value_range
    return (np.clip(images, -1.0, 1.0) + 1.0) / 2.0 * (high - low) + low


def sample_per_class(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Indices of a seeded sample of at most ``limit`` images per class (sorted)."""
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for cls in np.unique(labels):
        idx = np.where(labels == cls)[0]
        keep.append(rng.choice(idx, size=min(limit, len(idx)), replace=False))
    return np.sort(np.concatenate(keep))


def split(
    images: np.ndarray, labels: np.ndarray, spec: ImageSplitSpec
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Stratified train / validation / holdout."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    rest, holdout = train_test_split(
        idx, test_size=spec.holdout, stratify=labels, random_state=spec.seed
    )
    val_share = spec.validation / (1.0 - spec.holdout)
    train, validation = train_test_split(
        rest, test_size=val_share, stratify=labels[rest], random_state=spec.seed
    )
    return {
        name: (images[np.sort(part)], labels[np.sort(part)])
        for name, part in (("train", train), ("validation", validation), ("holdout", holdout))
    }


def content_hash(images: np.ndarray, labels: np.ndarray, class_names: list[str]) -> str:
    """SHA-256 of the scaled images, labels and class names (what the model learns from)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    digest.update("\x00".join(class_names).encode())
    return digest.hexdigest()


@dataclass
class PreparedImages:
    splits: dict[str, ImageSet]
    dataset_hash: str
    class_names: list[str]
    counts: dict[str, int]  # all images, per class

    def summary(self) -> dict[str, Any]:
        return {
            "dataset_hash": self.dataset_hash,
            "classes": self.class_names,
            "counts": self.counts,
            "rows": {name: len(s) for name, s in self.splits.items()},
        }


def prepare_images(spec: ImageDatasetSpec) -> PreparedImages:
    """Read, validate, (sample), scale and split."""
    raw = read_images(spec)
    if spec.sample_per_class is not None and len(raw.labels):
        keep = sample_per_class(raw.labels, spec.sample_per_class, spec.split.seed)
        raw = RawImages(
            raw.images[keep],
            raw.labels[keep],
            raw.class_names,
            [raw.origins[i] for i in keep] if raw.origins else [],
            raw.source,
        )
    validate(raw, spec)  # on what is used: after the per-class sample
    images, labels = raw.images, raw.labels
    n, k = len(labels), len(raw.class_names)
    for name, share in (("validation", spec.split.validation), ("holdout", spec.split.holdout)):
        if int(n * share) < k:  # a stratified split needs one image per class at least
            raise ImageDataError(
                f"{raw.source}: dataset.split.{name} = {share} of {n} images is "
                f"{int(n * share)}, fewer than the {k} classes; use more images or a larger share"
            )
    scaled = scale(images, spec.value_range)
    parts = split(scaled, labels, spec.split)
    splits = {name: ImageSet(x, y, raw.class_names) for name, (x, y) in parts.items()}
    counts = np.bincount(labels, minlength=len(raw.class_names))
    return PreparedImages(
        splits=splits,
        dataset_hash=content_hash(scaled, labels, raw.class_names),
        class_names=raw.class_names,
        counts={n: int(c) for n, c in zip(raw.class_names, counts, strict=True)},
    )


def export_folder(
    images: np.ndarray, labels: np.ndarray, class_names: list[str], root: str | Path
) -> list[Path]:
    """Write images in [-1, 1] as 8-bit PNGs under ``root/<class>/`` (examples, tests)."""
    from PIL import Image

    written = []
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        pixels = np.clip(unscale(img, (0.0, 255.0)), 0, 255).astype(np.uint8)
        folder = Path(root) / class_names[int(label)]
        os.makedirs(folder, exist_ok=True)
        array = pixels[0] if pixels.shape[0] == 1 else np.transpose(pixels, (1, 2, 0))
        path = folder / f"{i:05d}.png"
        Image.fromarray(array).save(path)
        written.append(path)
    return written
