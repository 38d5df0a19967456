"""Figures of a language model's training, logged to MLflow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def training_figure(history: Sequence[dict[str, float]]) -> Any:
    """Train and validation loss, validation perplexity and the learning rate by step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, lr_ax) = plt.subplots(1, 2, figsize=(10, 4))
    steps = [h["step"] for h in history]
    loss_ax.plot(steps, [h["train_loss"] for h in history], label="train loss (batch)")
    loss_ax.plot(steps, [h["validation_loss"] for h in history], label="validation loss")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("cross-entropy (nats/token)")
    loss_ax.legend()
    ppl_ax = loss_ax.twinx()
    ppl_ax.plot(steps, [h["validation_perplexity"] for h in history], "k:", label="val ppl")
    ppl_ax.set_ylabel("validation perplexity (token)")
    lr_ax.plot(steps, [h["learning_rate"] for h in history])
    lr_ax.set_xlabel("step")
    lr_ax.set_ylabel("learning rate")
    fig.suptitle("Language model training")
    fig.tight_layout()
    return fig
