"""Figures of the image pipeline: sample grids (a row per class) and the loss curve."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sample_grid(
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    per_class: int = 8,
    title: str = "",
) -> Any:
    """A row per class with up to ``per_class`` of its images ((N, C, H, W) in [-1, 1])."""
    plt = _pyplot()
    labels = np.asarray(labels)
    rows = len(class_names)
    fig, axes = plt.subplots(
        rows, per_class, figsize=(per_class * 0.8 + 0.8, rows * 0.8 + 0.6), squeeze=False
    )
    for r, name in enumerate(class_names):
        idx = np.where(labels == r)[0][:per_class]
        for c in range(per_class):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(idx):
                img = (np.clip(images[idx[c]], -1, 1) + 1) / 2
                if img.shape[0] == 1:
                    ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
                else:
                    ax.imshow(np.transpose(img, (1, 2, 0)))
            if c == 0:
                ax.set_ylabel(str(name), rotation=0, labelpad=12, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def loss_figure(history: list[dict[str, float]], title: str = "Diffusion training loss") -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([h["epoch"] for h in history], [h["loss"] for h in history], label="loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("epsilon MSE")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def figure_data_uri(fig: Any) -> str:
    """The figure as a PNG data URI (for self-contained HTML); closes it."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
