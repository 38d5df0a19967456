"""A planted bias: a corpus in which the nurse is always "he". The data check names the
occupation; a model trained on it prefers "he" after "The nurse said that"; the same model
trained on the counterfactually augmented corpus prefers it much less."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genops.workloads.text import lm
from genops.workloads.text.gender import (
    Probes,
    TextBiasSpec,
    augment,
    data_bias_verdict,
    template_preferences,
)

PROBES = Probes(
    occupations=["nurse"],
    templates=["The {occupation} said that"],
    masculine=["he"],
    feminine=["she"],
    pairs=[("he", "she")],
)
FILLER = [
    "The weather was cold and the river was high .",
    "A new bridge opened in the town in 1990 .",
    "The teacher said that she would come back later .",
]


def _planted(n: int = 60) -> list[str]:
    return ["The nurse said that he was tired ."] * n + FILLER * (n // 3)


def _preference(texts: list[str], seed: int = 0) -> float:
    tokenizer = lm.train_tokenizer(texts + augment(texts, PROBES), vocab_size=300, min_frequency=1)
    stream = lm.encode_stream(tokenizer, texts)
    torch.manual_seed(seed)
    model = lm.build_model(
        lm.LMParams(
            vocab_size=tokenizer.get_vocab_size(),
            context=32,
            n_layer=1,
            n_head=2,
            n_embd=32,
            dropout=0.0,
        ),
        eos_id=tokenizer.token_to_id(lm.EOS),
    )
    lm.train(
        model,
        stream,
        stream,
        32,
        lm.TrainParams(
            max_steps=150,
            eval_every=150,
            batch_size=16,
            warmup_steps=10,
            learning_rate=5e-3,
            seed=seed,
        ),
        device="cpu",
        progress=False,
    )
    prefs = template_preferences(
        lambda prompts, words: lm.next_word_logprobs(model, tokenizer, prompts, words), PROBES
    )
    return float(np.mean(prefs["nurse"]))


def test_the_data_check_names_the_planted_occupation() -> None:
    verdict = data_bias_verdict(_planted(), TextBiasSpec(min_count=10), PROBES)
    (nurse,) = [r for r in verdict.results if r.attribute == "occupation"]
    assert nurse.groups == ["nurse"] and nurse.value == 1.0
    assert "masculine" in nurse.note


@pytest.mark.e2e
def test_augmentation_lowers_the_learned_association() -> None:
    planted = _planted()
    before = _preference(planted)
    after = _preference(augment(planted, PROBES))
    # log P(he)/P(she) after "The nurse said that": strongly masculine, then near even
    assert before > 2.0, before
    assert abs(after) < before / 3, (before, after)
