"""Image data: the three source kinds (digits, PNG folders, .npz; local and S3), validation
errors that name file, rule and value, scaling, stratified split and atomic storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genops.core.config import ConfigError, load_config, parse_config
from genops.workloads.image.config import ImageDatasetSpec, ImageRunConfig
from genops.workloads.image.data import (
    ImageDataError,
    ImageSet,
    export_folder,
    prepare_images,
    read_images,
    scale,
    unscale,
)
from tests.conftest import REPO

DIGITS = REPO / "pipelines" / "configs" / "digits.yaml"


def _spec(**kw: object) -> ImageDatasetSpec:
    base: dict[str, object] = {"name": "toy", "image_size": 8, "min_images_per_class": 5}
    return ImageDatasetSpec.model_validate({**base, **kw})


def _npz(path: Path, images: np.ndarray, labels: np.ndarray) -> str:
    np.savez(path, images=images, labels=labels)
    return str(path)


def _toy(n_per_class: int = 12, classes: int = 3, size: int = 8, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    images = rng.integers(0, 256, size=(len(labels), size, size)).astype(np.uint8)
    return images, labels


def test_digits_load_validate_scale_and_split() -> None:
    config = load_config(DIGITS)
    assert isinstance(config, ImageRunConfig)
    data = prepare_images(config.dataset)
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["holdout"] == pytest.approx(1797 * 0.25, abs=2)
    train = data.splits["train"]
    assert train.images.shape[1:] == (1, 8, 8) and train.images.dtype == np.float32
    assert train.images.min() >= -1.0 and train.images.max() <= 1.0
    assert train.class_names == [str(i) for i in range(10)]
    # stratified: every class keeps its share in each split (within one image)
    for part in data.splits.values():
        shares = np.bincount(part.labels, minlength=10) / len(part)
        assert np.all(np.abs(shares - 0.1) < 0.02)
    assert len(data.dataset_hash) == 64
    assert prepare_images(config.dataset).dataset_hash == data.dataset_hash  # deterministic


def test_scale_round_trip() -> None:
    x = np.array([0.0, 8.0, 16.0])
    assert scale(x, (0, 16)).tolist() == [-1.0, 0.0, 1.0]
    assert unscale(scale(x, (0, 16)), (0, 16)).tolist() == pytest.approx(x.tolist())


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
def test_npz_layouts(tmp_path: Path, layout: str) -> None:
    images, labels = _toy()
    array = {
        "nhw": images,
        "nhwc": images[..., None],
        "nchw": images[:, None],
    }[layout]
    raw = read_images(_spec(source=_npz(tmp_path / "x.npz", array, labels)))
    assert raw.images.shape == (36, 1, 8, 8)
    assert raw.class_names == ["0", "1", "2"]


def test_npz_string_labels_and_label_names(tmp_path: Path) -> None:
    images, labels = _toy()
    names = np.array(["cat", "dog", "owl"])[labels]
    spec = _spec(source=_npz(tmp_path / "x.npz", images, names), label_names=["owl", "cat", "dog"])
    raw = read_images(spec)
    assert raw.class_names == ["owl", "cat", "dog"]
    assert raw.labels[0] == 1  # 'cat'


def test_npz_errors_name_the_file_and_rule(tmp_path: Path) -> None:
    images, labels = _toy()
    np.savez(tmp_path / "nolabels.npz", images=images)
    with pytest.raises(ImageDataError, match=r"nolabels.npz: missing array\(s\) \['labels'\]"):
        read_images(_spec(source=str(tmp_path / "nolabels.npz")))
    path = _npz(tmp_path / "short.npz", images, labels[:-1])
    with pytest.raises(ImageDataError, match="short.npz: 'labels' must be 1-D with one label"):
        read_images(_spec(source=path))
    path = _npz(tmp_path / "names.npz", images, np.array(["a", "b", "zebra"])[labels])
    with pytest.raises(ImageDataError, match=r"labels \['zebra'\] are not in dataset.label_names"):
        read_images(_spec(source=path, label_names=["a", "b"]))
    path = _npz(tmp_path / "ints.npz", images, labels)
    with pytest.raises(ImageDataError, match=r"labels \[2\] are outside the label set 0..1"):
        read_images(_spec(source=path, label_names=["a", "b"]))
    with pytest.raises(ImageDataError, match="missing.npz: file not found"):
        read_images(_spec(source=str(tmp_path / "missing.npz")))


def test_validation_reports_shape_range_and_rare_classes(tmp_path: Path) -> None:
    images, labels = _toy()
    path = _npz(tmp_path / "big.npz", images, labels)
    with pytest.raises(
        ImageDataError, match=r"shape \(1, 8, 8\) \(C,H,W\); the spec says \(1, 16, 16\)"
    ):
        prepare_images(_spec(source=path, image_size=16))
    hot = images.astype(np.float64)
    hot[4, 0, 0] = 300.0
    path = _npz(tmp_path / "hot.npz", hot, labels)
    with pytest.raises(ImageDataError) as info:
        prepare_images(_spec(source=path))
    assert "hot.npz[4]: pixel values in [" in str(info.value)
    assert "outside dataset.value_range [0, 255]" in str(info.value)
    few_labels = labels.copy()
    few_labels[few_labels == 2] = 1
    few_labels[-3:] = 2  # class '2' keeps three images
    path = _npz(tmp_path / "few.npz", images, few_labels)
    with pytest.raises(ImageDataError, match=r"min_images_per_class \(5\): '2' has 3"):
        prepare_images(_spec(source=path))


def test_png_folder_round_trip_and_errors(tmp_path: Path) -> None:
    images, labels = _toy()
    export_folder(
        scale(images[:, None].astype(float), (0, 255)), labels, ["a", "b", "c"], tmp_path / "png"
    )
    data = prepare_images(_spec(source=str(tmp_path / "png")))
    assert data.class_names == ["a", "b", "c"]
    assert data.counts == {"a": 12, "b": 12, "c": 12}
    # a wrong-sized and an RGB image are named with the rule they break
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(tmp_path / "png" / "a" / "big.png")
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "png" / "b" / "rgb.png")
    with pytest.raises(ImageDataError) as info:
        prepare_images(_spec(source=str(tmp_path / "png")))
    text = str(info.value)
    assert "png/a/big.png: image is 10x10 pixels, the spec says dataset.image_size = 8" in text
    assert "png/b/rgb.png: has 3 channel(s) (mode RGB), the spec says dataset.channels = 1" in text
    with pytest.raises(
        ImageDataError, match=r"sub-folder\(s\) \['c'\] are not in dataset.label_names"
    ):
        read_images(_spec(source=str(tmp_path / "png"), label_names=["a", "b"]))
    with pytest.raises(ImageDataError, match="no PNG images found"):
        read_images(_spec(source=str(tmp_path)))


def test_imageset_save_is_atomic_and_round_trips(tmp_path: Path) -> None:
    images, labels = _toy()
    data = ImageSet(scale(images[:, None].astype(float), (0, 255)), labels, ["a", "b", "c"])
    data.save(tmp_path / "x.npz")
    assert not list(tmp_path.glob("*.tmp"))
    back = ImageSet.load(tmp_path / "x.npz")
    assert back.class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(back.images, data.images)
    assert back.counts() == {"a": 12, "b": 12, "c": 12}


def test_config_dispatch_and_errors(tmp_path: Path) -> None:
    config = load_config(REPO / "pipelines" / "configs" / "digits-fast.yaml")
    assert isinstance(config, ImageRunConfig)
    assert config.model_name == "digits-diffusion"
    assert config.experiment_name == "image-diffusion-digits"
    assert config.dataset.sample_per_class == 60 and config.model.epochs == 8
    with pytest.raises(ConfigError, match="pipeline: unknown pipeline 'video'"):
        parse_config({"pipeline": "video"})
    with pytest.raises(
        ConfigError, match=r"model: .*sample_steps \(20\) must not exceed timesteps \(10\)"
    ):
        parse_config(
            {
                "pipeline": "image-diffusion",
                "dataset": {"name": "d"},
                "model": {"timesteps": 10, "sample_steps": 20},
            }
        )
    with pytest.raises(ConfigError, match="tuning.search_space: 'hidden' is not a model parameter"):
        parse_config(
            {
                "pipeline": "image-diffusion",
                "dataset": {"name": "d"},
                "tuning": {"search_space": {"hidden": {"type": "int", "low": 1, "high": 2}}},
            }
        )
    # a relative source resolves against the spec's folder
    spec = tmp_path / "mine.yaml"
    spec.write_text("pipeline: image-diffusion\ndataset: {name: mine, source: imgs/x.npz}\n")
    assert load_config(spec).dataset.source == str(tmp_path / "imgs" / "x.npz")


def test_s3_npz_and_png_folder_through_a_local_s3_endpoint(
    tmp_path: Path, s3_endpoint: str
) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="images")
    images, labels = _toy()
    s3.upload_file(_npz(tmp_path / "toy.npz", images, labels), "images", "sets/toy.npz")
    raw = read_images(_spec(source="s3://images/sets/toy.npz"))
    assert raw.images.shape == (36, 1, 8, 8)
    for path in export_folder(
        scale(images[:, None].astype(float), (0, 255)), labels, ["a", "b", "c"], tmp_path / "p"
    ):
        key = f"folder/{path.parent.name}/{path.name}"
        s3.upload_file(str(path), "images", key)
    data = prepare_images(_spec(source="s3://images/folder"))
    assert data.counts == {"a": 12, "b": 12, "c": 12}
    with pytest.raises(ImageDataError, match="s3://images/none.npz: cannot read from S3"):
        read_images(_spec(source="s3://images/none.npz"))


def test_partial_shared_sections_keep_the_image_defaults() -> None:
    base = {"pipeline": "image-diffusion", "dataset": {"name": "d"}}
    config = parse_config({**base, "tuning": {"enabled": True}, "blessing": {}})
    assert isinstance(config, ImageRunConfig)
    assert set(config.tuning.search_space) == {"learning_rate", "base_channels"}
    assert config.blessing.min_metrics == {"cas": 0.90, "domain_accuracy_conditional": 0.90}
    assert config.blessing.require_data_bias_pass
    with pytest.raises(ConfigError, match="blessing: 'utility_tstr_auc' is not an image metric"):
        parse_config({**base, "blessing": {"min_metrics": {"utility_tstr_auc": 0.8}}})
    with pytest.raises(ConfigError, match=r"evaluation.steps \(500\) must not exceed"):
        parse_config({**base, "model": {"timesteps": 50, "sample_steps": 10},
                          "evaluation": {"steps": 500}})  # fmt: skip
    with pytest.raises(ConfigError, match=r"sample_per_class \(20\) is below min_images_per_class"):
        parse_config(
            {**base, "dataset": {"name": "d", "sample_per_class": 20, "min_images_per_class": 50}}
        )


def test_validation_applies_to_the_sampled_images(tmp_path: Path) -> None:
    images, labels = _toy(n_per_class=12)
    path = _npz(tmp_path / "x.npz", images, labels)
    data = prepare_images(_spec(source=path, sample_per_class=10, min_images_per_class=5))
    assert data.counts == {"0": 10, "1": 10, "2": 10}
    with pytest.raises(ImageDataError, match=r"split.validation = 0.1 of 18 images is 1, fewer"):
        prepare_images(_spec(source=path, sample_per_class=6, min_images_per_class=5))
    np.save(tmp_path / "plain.npy", images)
    (tmp_path / "plain.npz").write_bytes((tmp_path / "plain.npy").read_bytes())
    with pytest.raises(ImageDataError, match="plain.npz: not an .npz archive"):
        read_images(_spec(source=str(tmp_path / "plain.npz")))
    (tmp_path / "png" / "a").mkdir(parents=True)
    (tmp_path / "png" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(ImageDataError, match="png/a/broken.png: not a readable image"):
        read_images(_spec(source=str(tmp_path / "png")))
