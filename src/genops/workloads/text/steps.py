"""The ``text-lm`` pipeline's own steps as plain functions over file paths: prepare (read and
split the corpus), the data gate (corpus checks + gender representation), train (tokenizer
and language model, with PII redaction or counterfactual augmentation when the gate asks for
it), evaluate (word-level perplexity, int8 perplexity, diversity, memorisation, the
generated-text gender gate) and the tuning objective the core's tune worker runs.

Splits travel between steps as JSON lines (``source``, ``line``, ``text``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genops.core.config import read_config_artifact
from genops.core.io import write_text_atomic
from genops.core.steps import (
    ReportOutputs,
    log_model_params,
    record_trained_model,
    record_verdict,
    tag_data_gate,
    tag_synthetic_gate,
)
from genops.workloads.text.config import TextRunConfig
from genops.workloads.text.documents import Document

SPLITS = ("train", "validation", "test")


def read_text_config(path: str | Path) -> TextRunConfig:
    config = read_config_artifact(path)
    if not isinstance(config, TextRunConfig):
        raise TypeError(f"{path}: a '{config.pipeline_name}' config, not a text-lm one")
    return config


def write_documents(docs: Sequence[Document], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps({"source": doc.source, "line": doc.line, "text": doc.text}))
            handle.write("\n")
    tmp.replace(path)


def read_documents(path: str | Path) -> list[Document]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [Document(**json.loads(line)) for line in handle if line.strip()]


def texts(docs: Sequence[Document]) -> list[str]:
    return [d.text for d in docs]


def corpus_hash(splits: dict[str, list[Document]]) -> str:
    digest = hashlib.sha256()
    for name in SPLITS:
        for doc in splits.get(name, []):
            digest.update(doc.text.encode("utf-8"))
            digest.update(b"\n")
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- prepare


def prepare(
    config_path: str | Path, tracking_uri: str, run_id: str, out: dict[str, str]
) -> dict[str, Any]:
    """Read and split the corpus (errors name file and line); write the splits."""
    import mlflow

    from genops.core.tracking import step_run
    from genops.workloads.text.corpus import read_corpus

    config = read_text_config(config_path)
    with step_run(tracking_uri, run_id, "prepare"):
        splits = read_corpus(config.dataset)
        for name in SPLITS:
            write_documents(splits[name], out[name])
        dataset_hash = corpus_hash(splits)
        counts = {f"documents_{n}": float(len(splits[n])) for n in SPLITS}
        counts |= {f"words_{n}": float(sum(len(d.text.split()) for d in splits[n])) for n in SPLITS}
        mlflow.log_metrics(counts)
        mlflow.log_params({"dataset_hash": dataset_hash, "source": config.dataset.source})
        mlflow.MlflowClient().set_tag(run_id, "genops.dataset_hash", dataset_hash)
    return {"dataset_hash": dataset_hash, **counts}


# ---------------------------------------------------------------- data gate


def data_check(
    config_path: str | Path,
    split_paths: dict[str, str],
    tracking_uri: str,
    run_id: str,
    out: ReportOutputs,
) -> str:
    """Corpus checks (duplicates, personal data, split overlap) and the corpus's gender
    representation; returns the decision: stop, continue, or the mitigations to apply
    (``redact``, ``augment`` or ``redact+augment``)."""
    import mlflow

    from genops.core.report import render_html, render_markdown
    from genops.core.tracking import step_run
    from genops.core.verdict import BiasVerdict, decide
    from genops.workloads.text.corpus import check_corpus
    from genops.workloads.text.gender import (
        corpus_statistics,
        data_bias_verdict,
        load_probes,
        statistics_to_dict,
    )

    config = read_text_config(config_path)
    splits = {name: read_documents(path) for name, path in split_paths.items()}
    with step_run(tracking_uri, run_id, "data-check"):
        report = check_corpus(splits, config.checks)
        probes = load_probes(config.bias)
        stats = corpus_statistics(texts(splits["train"]), probes, config.bias.confidence)
        gender = data_bias_verdict([], config.bias, probes, stats=stats)
        verdict = BiasVerdict.from_results(
            "data", [*report.verdict.results, *gender.results], config.bias.policy
        )
        verdict.passed = report.passed and gender.passed
        mitigations = []
        if report.decision == "redact":
            mitigations.append("redact")
        gender_decision = decide(gender, config.bias.policy)
        if gender_decision == "mitigate":
            mitigations.append("augment")
        if report.decision == "stop" or gender_decision == "stop":
            decision = "stop"
        else:
            decision = "+".join(mitigations) or "continue"
        title = f"Corpus and gender check: {config.dataset.name}"
        html_text = render_html(verdict, title=title).replace(
            "</body>", report.to_html() + "</body>"
        )
        md_text = render_markdown(verdict, title) + "\n\n" + report.to_markdown()
        record_verdict(verdict, out, html_text, md_text, "data_check", {})
        mlflow.log_dict(report.to_dict(), "data_check/corpus.json")
        mlflow.log_dict(statistics_to_dict(stats), "data_check/gender_statistics.json")
        mlflow.log_metrics({k: float(v) for k, v in report.stats.items() if _is_number(v)})
        tag_data_gate(run_id, verdict, "stop" if decision == "stop" else "continue")
        mlflow.MlflowClient().set_tag(run_id, "genops.data_decision", decision)
    return decision


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---------------------------------------------------------------- train


@dataclass
class Candidate:
    """What a train step or a tuning trial fits: the model, its tokenizer and the settings."""

    model: Any
    tokenizer: Any
    spec: Any  # LanguageModelSpec with the tuned values
    train_stream: Any
    validation_stream: Any


def training_texts(config: TextRunConfig, docs: Sequence[Document], decision: str) -> list[str]:
    """The training text after the data gate's mitigations."""
    from genops.workloads.text.corpus import redact
    from genops.workloads.text.gender import augment, load_probes

    out = texts(docs)
    if "redact" in decision.split("+"):
        out = [redact(t) for t in out]
    if "augment" in decision.split("+"):
        out = augment(out, load_probes(config.bias))
    return out


def build_candidate(
    config: TextRunConfig,
    train_texts: Sequence[str],
    validation_texts: Sequence[str],
    params: dict[str, Any] | None = None,
    tokenizer: Any = None,
) -> Candidate:
    """The tokenizer (trained on ``train_texts`` unless given or fine-tuning a checkpoint
    that ships one) and the model: a fresh GPT-2 decoder, or the checkpoint (LoRA-wrapped
    when configured)."""
    from genops.workloads.text import lm

    spec = config.model.model_validate({**config.model.model_dump(), **(params or {})})
    lm.seed_everything(spec.seed)  # weights and LoRA adapters alike
    if spec.pretrained is not None:
        folder = _local_checkpoint(spec.pretrained)
        model = lm.load_pretrained(folder)
        tokenizer = _checkpoint_tokenizer(folder, model, spec.pretrained)
    if tokenizer is None:
        tokenizer = lm.train_tokenizer(
            list(train_texts), config.tokenizer.vocab_size, config.tokenizer.min_frequency
        )
    eos = tokenizer.token_to_id(lm.EOS)
    if spec.pretrained is None:
        model = lm.build_model(
            lm.LMParams(
                vocab_size=tokenizer.get_vocab_size(),
                context=spec.context,
                n_layer=spec.n_layer,
                n_head=spec.n_head,
                n_embd=spec.n_embd,
                dropout=spec.dropout,
            ),
            eos_id=eos,
        )
    elif spec.lora:
        model = lm.add_lora(model, spec.lora_r, spec.lora_alpha, spec.lora_dropout)
    context = min(spec.context, lm.context_length(model))
    spec = spec.model_copy(update={"context": context})
    return Candidate(
        model,
        tokenizer,
        spec,
        lm.encode_stream(tokenizer, list(train_texts)),
        lm.encode_stream(tokenizer, list(validation_texts)),
    )


def _checkpoint_tokenizer(folder: Path, model: Any, uri: str) -> Any:
    """The tokenizer a checkpoint was trained with (``tokenizer.json``, Hugging Face's fast
    tokenizer file): a new one would give its embeddings meaningless ids."""
    from tokenizers import Tokenizer

    from genops.workloads.text import lm

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ValueError(
            f"model.pretrained: {uri} has no tokenizer.json; save the checkpoint's tokenizer "
            "beside it (tokenizer.save_pretrained(folder))"
        )
    tokenizer = Tokenizer.from_file(str(path))
    size = int(model.get_input_embeddings().weight.shape[0])
    if tokenizer.get_vocab_size() > size:
        raise ValueError(
            f"model.pretrained: {uri}: the tokenizer has {tokenizer.get_vocab_size()} tokens, "
            f"the model's embeddings {size}"
        )
    if tokenizer.token_to_id(lm.EOS) is None:
        raise ValueError(f"model.pretrained: {uri}: the tokenizer has no {lm.EOS} token")
    return tokenizer


def _local_checkpoint(uri: str) -> Path:
    """A checkpoint folder; an ``s3://`` prefix is downloaded to a temporary folder first."""
    if not uri.startswith("s3://"):
        return Path(uri)
    import tempfile

    from genops.workloads.text.corpus import _list_s3, _read_raw

    target = Path(tempfile.mkdtemp(prefix="genops-ckpt-"))
    prefix = uri.rstrip("/") + "/"
    for key in _list_s3(uri):
        name = key[len(prefix) :] if key.startswith(prefix) else key.rsplit("/", 1)[-1]
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(_read_raw(key))
    return target


def train_params(spec: Any, max_steps: int | None = None) -> Any:
    from genops.workloads.text import lm

    return lm.TrainParams(
        learning_rate=spec.learning_rate,
        weight_decay=spec.weight_decay,
        warmup_steps=spec.warmup_steps,
        batch_size=spec.batch_size,
        max_steps=max_steps or spec.max_steps,
        time_budget_s=spec.time_budget_s,
        eval_every=spec.eval_every,
        eval_batches=spec.eval_batches,
        patience=spec.patience,
        seed=spec.seed,
        bf16=spec.bf16,
    )


def train(
    config_path: str | Path,
    train_path: str | Path,
    validation_path: str | Path,
    decision: str,
    tracking_uri: str,
    run_id: str,
    model_dir: str | Path,
    params_path: str | Path | None = None,
) -> dict[str, Any]:
    """Train (or fine-tune) the language model with the tuned params, save it with its
    tokenizer and log it as an MLflow pyfunc model."""
    import matplotlib.pyplot as plt
    import mlflow

    from genops.core.device import apply_thread_env
    from genops.core.tracking import step_run
    from genops.workloads.text import lm
    from genops.workloads.text.plots import training_figure
    from genops.workloads.text.pyfunc import log_text_model

    apply_thread_env()
    config = read_text_config(config_path)
    tuned: dict[str, Any] = json.loads(Path(params_path).read_text()) if params_path else {}
    train_docs, validation_docs = read_documents(train_path), read_documents(validation_path)
    corpus = training_texts(config, train_docs, decision)
    model_dir = Path(model_dir)
    with step_run(tracking_uri, run_id, "train") as run:
        candidate = build_candidate(config, corpus, texts(validation_docs), tuned)
        log_model_params(candidate.spec, tuned)
        mlflow.log_params(
            {
                "data_decision": decision,
                "train_texts": len(corpus),
                "train_tokens": len(candidate.train_stream),
                "vocab_size": candidate.tokenizer.get_vocab_size(),
                "parameters": sum(p.numel() for p in candidate.model.parameters()),
                "trainable_parameters": sum(
                    p.numel() for p in candidate.model.parameters() if p.requires_grad
                ),
            }
        )
        prompts = candidate.spec.sample_prompts

        def on_eval(step: int, point: dict[str, float]) -> None:
            mlflow.log_metrics({k: v for k, v in point.items() if k != "step"}, step=step)
            candidate.model.eval()  # samples without dropout
            samples = lm.generate(
                candidate.model,
                candidate.tokenizer,
                prompts,
                lm.GenerationParams(max_new_tokens=32, seed=0, top_k=50),
            )
            lines = [f"{p!r} -> {s!r}" for p, s in zip(prompts, samples, strict=True)]
            mlflow.log_text("\n".join(lines), f"samples/step_{step:06d}.txt")
            candidate.model.train()

        result = lm.train(
            candidate.model,
            candidate.train_stream,
            candidate.validation_stream,
            candidate.spec.context,
            train_params(candidate.spec),
            device=candidate.spec.device,
            on_eval=on_eval,
        )
        mlflow.set_tag("train_precision", result.precision)
        fig = training_figure(result.history)
        mlflow.log_figure(fig, "plots/training.png")
        plt.close(fig)
        mlflow.log_dict({"history": result.history}, "training/history.json")
        saved = lm.save(
            candidate.model,
            candidate.tokenizer,
            model_dir / "lm",
            quantize=config.evaluation.quantize,
        )
        info = log_text_model(saved)
        summary = {
            "train_seconds": result.seconds,
            "train_steps": float(result.steps),
            "best_validation_loss": result.best_validation_loss,
            "best_validation_perplexity": math.exp(min(result.best_validation_loss, 50.0)),
            "train_tokens_per_second": result.steps
            * candidate.spec.batch_size
            * candidate.spec.context
            / max(result.seconds, 1e-9),
        }
        meta = record_trained_model(model_dir, info, run, summary, stopped=result.stopped)
    return meta


# ---------------------------------------------------------------- evaluate


def scoring_lines(config: TextRunConfig, test_docs: Sequence[Document]) -> list[str]:
    """The test text perplexity is computed over. A line-per-paragraph corpus (WikiText) is
    scored as its whole file, blank lines included: each line's newline is an ``<eos>`` of
    the published word counts (245,569 tokens for WikiText-2's test split), and the corpus
    reader keeps no blank line as a document. Other corpora: the test documents."""
    from genops.workloads.text.corpus import _lines, _read_raw, _resolve

    fmt, _ = _resolve(config.dataset)
    sources = sorted({d.source for d in test_docs})
    if fmt != "wikitext" or len(sources) != 1:
        return texts(test_docs)
    return [line or "" for line in _lines(_read_raw(sources[0]), sources[0], [])]


def evaluate(
    config_path: str | Path,
    model_dir: str | Path,
    train_path: str | Path,
    test_path: str | Path,
    tracking_uri: str,
    run_id: str,
    evaluation_json: str | Path,
    out: ReportOutputs,
) -> tuple[dict[str, float], bool]:
    """Word-level perplexity and bits per byte on the test split (fp32 and int8), diversity
    and memorisation of generations beside real holdout text, and the generated-text gender
    gate. Returns the metrics and whether the gate passed."""
    import mlflow
    import numpy as np

    from genops.core.report import render_html, render_markdown
    from genops.core.tracking import log_parent, step_run
    from genops.workloads.text import lm
    from genops.workloads.text.gender import (
        corpus_statistics,
        generated_bias_verdict,
        load_probes,
        template_preferences,
    )
    from genops.workloads.text.metrics import SpanIndex, distinct_n, repetition_rate

    config = read_text_config(config_path)
    ev = config.evaluation
    loaded = lm.load(Path(model_dir) / "lm", device=config.model.device, quantize=False)
    model, tokenizer = loaded.model, loaded.tokenizer
    test_docs = read_documents(test_path)
    test_texts = texts(test_docs)
    scored = scoring_lines(config, test_docs)
    if ev.test_max_lines is not None:
        test_texts, scored = test_texts[: ev.test_max_lines], scored[: ev.test_max_lines]
    train_texts = texts(read_documents(train_path))
    metrics: dict[str, float] = {}
    with step_run(tracking_uri, run_id, "evaluate"):
        started = time.perf_counter()
        ppl = lm.perplexity(model, tokenizer, scored, loaded.context, config.model.device)
        metrics |= {
            "word_perplexity": ppl.word_perplexity,
            "neg_word_perplexity": -ppl.word_perplexity,
            "token_perplexity": ppl.token_perplexity,
            "bits_per_byte": ppl.bits_per_byte,
            "test_words": float(ppl.words),
            "test_tokens": float(ppl.tokens),
            "perplexity_seconds": time.perf_counter() - started,
        }
        if ev.quantize:
            started = time.perf_counter()
            int8 = lm.quantize_dynamic_int8(model)
            q = lm.perplexity(int8, tokenizer, scored, loaded.context, "cpu")
            metrics |= {
                "word_perplexity_int8": q.word_perplexity,
                "quantized_perplexity_increase": q.word_perplexity / ppl.word_perplexity - 1.0,
                "perplexity_seconds_int8": time.perf_counter() - started,
            }
        params = lm.GenerationParams(
            max_new_tokens=ev.max_new_tokens,
            temperature=ev.temperature,
            top_k=ev.top_k,
            top_p=ev.top_p,
            seed=ev.seed,
        )
        generated = lm.generate(model, tokenizer, [""] * ev.samples, params)
        rng = np.random.default_rng(ev.seed)
        long_holdout = [t for t in test_texts if len(t.split()) >= 20] or test_texts
        picks = rng.choice(len(long_holdout), min(ev.samples, len(long_holdout)), replace=False)
        words = max(1, int(np.median([len(g.split()) for g in generated] or [1])))
        holdout = [" ".join(long_holdout[i].split()[:words]) for i in picks]
        metrics |= {
            "distinct_1": distinct_n(generated, 1),
            "distinct_2": distinct_n(generated, 2),
            "repetition_rate": repetition_rate(generated),
            "distinct_1_holdout": distinct_n(holdout, 1),
            "distinct_2_holdout": distinct_n(holdout, 2),
            "repetition_rate_holdout": repetition_rate(holdout),
        }
        index = SpanIndex(lm.encode_stream(tokenizer, train_texts), ev.memorisation_span)
        gen_ids = [np.asarray(tokenizer.encode(g).ids) for g in generated]
        real_ids = [np.asarray(tokenizer.encode(t).ids) for t in test_texts]
        share, windows = index.share_memorised(gen_ids)
        share_real, windows_real = index.share_memorised(real_ids)
        metrics |= {
            "memorised_share": 0.0 if windows == 0 else share,
            "memorised_windows": float(windows),
            "memorised_share_holdout": 0.0 if windows_real == 0 else share_real,
        }
        probes = load_probes(config.bias)
        corpus = corpus_statistics(train_texts, probes, config.bias.confidence)

        def score_next(prompts: list[str], words_: list[str]) -> Any:
            return lm.next_word_logprobs(model, tokenizer, prompts, words_)

        preferences = template_preferences(score_next, probes)
        verdict = generated_bias_verdict(corpus, generated, preferences, config.bias, probes)
        title = f"Generated-text gender check: {config.dataset.name}"
        record_verdict(
            verdict,
            out,
            render_html(verdict, title=title),
            render_markdown(verdict, title),
            "synthetic_bias",
            {},
        )
        mlflow.log_text(
            "\n\n".join(f"--- sample {i}\n{g}" for i, g in enumerate(generated)),
            "evaluation/generations.txt",
        )
        mlflow.log_dict(preferences, "evaluation/template_preferences.json")
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        mlflow.log_metrics(finite)
        write_text_atomic(evaluation_json, json.dumps({"metrics": finite}, indent=2))
        headline = {**finite, "synthetic_bias_passed": float(verdict.passed)}
        log_parent(tracking_uri, run_id, headline, {})
        tag_synthetic_gate(run_id, verdict)
    return finite, verdict.passed


# ---------------------------------------------------------------- tuning


class TextObjective:
    """Trials of a language model: validation loss every ``eval_every`` steps for the
    pruner, then ``objective = -validation loss`` (the study maximises)."""

    intermediate_metric = "validation_loss"

    def __init__(self, max_steps: int | None) -> None:
        self.max_steps = max_steps
        self.last_loss = math.inf
        self.best_loss = math.inf

    def fit(self, model: Any, on_epoch_end: Callable[[int, dict[str, float]], None]) -> None:
        from genops.workloads.text import lm

        candidate: Candidate = model
        rounds = iter(range(1_000_000))  # the pruner's step: one per evaluation

        def on_eval(step: int, point: dict[str, float]) -> None:
            self.last_loss = point["validation_loss"]
            on_epoch_end(next(rounds), point)

        result = lm.train(
            candidate.model,
            candidate.train_stream,
            candidate.validation_stream,
            candidate.spec.context,
            train_params(candidate.spec, self.max_steps),
            device=candidate.spec.device,
            on_eval=on_eval,
            progress=False,
        )
        self.best_loss = result.best_validation_loss  # the weights train() keeps

    def intermediate(self, model: Any, seed: int) -> float:
        return -self.last_loss

    def final(self, model: Any, seed: int) -> dict[str, float]:
        return {"objective": -self.best_loss, "validation_loss": self.best_loss}


def tuning_objective(
    config: TextRunConfig, train_path: str, validation_path: str, budget: dict[str, Any]
) -> tuple[TextObjective, Callable[[dict[str, Any]], Any]]:
    """One tokenizer for every trial; each trial builds its model from the tuned params.
    ``tuning.trial_epochs`` is read as evaluation rounds: max_steps = rounds x eval_every."""
    from genops.workloads.text import lm

    train_texts = texts(read_documents(train_path))
    validation_texts = texts(read_documents(validation_path))
    tokenizer = lm.train_tokenizer(
        train_texts, config.tokenizer.vocab_size, config.tokenizer.min_frequency
    )
    rounds = budget.get("epochs")
    max_steps = None if rounds is None else int(rounds) * config.model.eval_every

    def build(params: dict[str, Any]) -> Candidate:
        clean = {k: v for k, v in params.items() if k in type(config.model).model_fields}
        if "seed" in budget:
            clean.setdefault("seed", budget["seed"])
        return build_candidate(config, train_texts, validation_texts, clean, tokenizer)

    return TextObjective(max_steps), build
