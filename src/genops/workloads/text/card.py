"""What a language model's model card says about it (genops.core.modelcard lays it out): its
uses, its corpus, its figures with the held-out-text baselines they are read against, and an
example request."""

from __future__ import annotations

from typing import Any

from genops.core.workload import CardFigure, ModelCardFacts, RunRecord


def _figure(
    run: RunRecord, name: str, meaning: str, baseline: str = "", fixed: float | None = None
) -> CardFigure | None:
    if name not in run.metrics:
        return None
    base = run.metrics.get(baseline) if baseline in run.metrics else fixed
    return CardFigure(name, run.metrics[name], meaning, baseline, base)


def card_facts(config: Any, run: RunRecord) -> ModelCardFacts:
    spec, model = config.dataset, config.model
    prepare = run.step_metrics.get("prepare", {})
    docs = ", ".join(
        f"{int(prepare[f'documents_{split}']):,} {split}"
        for split in ("train", "validation", "test")
        if f"documents_{split}" in prepare
    )
    training = [f"Format `{spec.format}`, documents of at most {spec.max_chars:,} characters"]
    if docs:
        training.insert(0, f"Documents: {docs}")
    if "words_train" in prepare:
        training.insert(1, f"{int(prepare['words_train']):,} words of training text")
    if spec.max_documents:
        training.append(f"A seeded sample of at most {spec.max_documents:,} training documents")
    origin = (
        f"fine-tuned from `{model.pretrained}`" + (" with LoRA adapters" if model.lora else "")
        if model.pretrained
        else f"trained from scratch ({model.n_layer} layers, width {model.n_embd}, context "
        f"{model.context} tokens)"
    )
    figures = [
        _figure(run, "word_perplexity", "word-level perplexity on the test split (lower is "
                "better; a unigram model of WikiText-2 scores 911.7)"),
        _figure(run, "word_perplexity_int8", "the same for the int8 model that is served",
                "word_perplexity"),
        _figure(run, "bits_per_byte", "test-split cross-entropy per byte of text"),
        _figure(run, "distinct_2", "share of distinct word pairs in generations",
                "distinct_2_holdout"),
        _figure(run, "repetition_rate", "share of repeated n-grams in generations",
                "repetition_rate_holdout"),
        _figure(run, "memorised_share", "share of generations holding a long span found "
                "verbatim in the training text", "memorised_share_holdout"),
    ]  # fmt: skip
    prompt = model.sample_prompts[0] if model.sample_prompts else " The"
    return ModelCardFacts(
        model=f"A GPT-2-style decoder language model of the `{spec.name}` corpus, {origin}: "
        "it continues a prompt.",
        intended_use=[
            f"Text in the style of `{spec.name}` for demonstrations, testing and research on "
            "language-model pipelines.",
        ],
        out_of_scope=[
            "Facts: the model continues text; what it writes need not be true.",
            "Text about real people, advice, or any decision about a person.",
            "Languages and domains far from the training corpus.",
        ],
        training_data=training,
        sensitive_attributes=[
            "gender: feminine and masculine pronouns, and the gender associations of "
            "occupations in the corpus, in generated text and in the model's next-word "
            "probabilities"
        ],
        figures=[f for f in figures if f is not None],
        limitations=[
            "A small model: generations drift off topic within a few sentences.",
            "Occupations with few gendered mentions are too rare to judge (see the gates).",
        ],
        example_request={"prompts": [prompt], "max_new_tokens": 20, "seed": 1},
    )
