"""Text benchmark on WikiText-2 (issue: third workload, text generation).

1. Quality at the same wall-clock training budget, side by side in one process: the default
   config's GPT-2-style model (pipelines/configs/wikitext.yaml; BPE tokenizer) against the
   word-level LSTM language model of the PyTorch examples (``word_language_model``: two
   layers, tied weights, 200 units, dropout 0.2, SGD with gradient clipping and learning-rate
   annealing) trained on the same split. Both are scored by word-level test perplexity:
   total NLL over the test split / its 245,569 word tokens. Targets: the transformer beats the
   LSTM, and scores at most 200 (unigram 911.7).
2. Generation: tokens/s at batch 1 and 8, time to first token, and p50/p99 latency of
   concurrent clients (1, 4, 16) against the model server's adapter, fp32 and int8 side by
   side; on CUDA too when present.

Writes JSON and Markdown next to ``--out``. ``--budget`` sets the training seconds of each;
by default the default config's own ``model.time_budget_s``, so the race is run at the budget a
user's ``make run-text`` trains for.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import torch
from benchinfo import load_average, machine

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "text" / "wikitext-2"


def _lines(split: str) -> list[str]:
    with gzip.open(DATA / f"{split}.txt.gz", "rt", encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


# ---------------------------------------------------------------- the LSTM baseline


class WordLSTM(torch.nn.Module):
    """pytorch/examples word_language_model's RNNModel (LSTM, tied weights)."""

    def __init__(self, vocab: int, size: int = 200, layers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.drop = torch.nn.Dropout(dropout)
        self.encoder = torch.nn.Embedding(vocab, size)
        self.rnn = torch.nn.LSTM(size, size, layers, dropout=dropout)
        self.decoder = torch.nn.Linear(size, vocab)
        self.decoder.weight = self.encoder.weight
        torch.nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        torch.nn.init.zeros_(self.decoder.bias)
        self.layers, self.size = layers, size

    def forward(self, x: torch.Tensor, hidden: Any) -> tuple[torch.Tensor, Any]:
        out, hidden = self.rnn(self.drop(self.encoder(x)), hidden)
        return self.decoder(self.drop(out)), hidden

    def init_hidden(self, batch: int) -> Any:
        zeros = torch.zeros(self.layers, batch, self.size)
        return (zeros, zeros.clone())


def _word_ids(lines: list[str], vocab: dict[str, int]) -> torch.Tensor:
    ids = [vocab[w] for line in lines for w in [*line.split(), "<eos>"]]
    return torch.tensor(ids, dtype=torch.long)


def _batchify(data: torch.Tensor, batch: int) -> torch.Tensor:
    n = data.size(0) // batch
    return data[: n * batch].view(batch, n).t().contiguous()


def lstm_baseline(budget: float, seed: int = 0) -> dict[str, float]:
    """Train the examples' LSTM for ``budget`` seconds (epochs of BPTT 35, batch 20, lr 20,
    clip 0.25, lr / 4 when validation does not improve); word-level test perplexity."""
    torch.manual_seed(seed)
    train, valid, test = _lines("train"), _lines("valid"), _lines("test")
    vocab: dict[str, int] = {}
    for line in train:
        for word in [*line.split(), "<eos>"]:
            vocab.setdefault(word, len(vocab))
    train_ids = _batchify(_word_ids(train, vocab), 20)
    valid_ids, test_ids = (
        _batchify(_word_ids(valid, vocab), 10),
        _batchify(_word_ids(test, vocab), 10),
    )
    model = WordLSTM(len(vocab))
    loss_fn = torch.nn.CrossEntropyLoss()
    lr, best, started, steps = 20.0, math.inf, time.perf_counter(), 0

    def evaluate(data: torch.Tensor) -> float:
        model.eval()
        total, hidden = 0.0, model.init_hidden(data.size(1))
        with torch.no_grad():
            for i in range(0, data.size(0) - 1, 35):
                x, y = data[i : i + 35], data[i + 1 : i + 36]
                x = x[: len(y)]
                out, hidden = model(x, hidden)
                total += (
                    len(x) * data.size(1) * float(loss_fn(out.view(-1, len(vocab)), y.reshape(-1)))
                )
        model.train()
        return total / ((data.size(0) - 1) * data.size(1))

    while time.perf_counter() - started < budget:
        hidden = model.init_hidden(20)
        for i in range(0, train_ids.size(0) - 1, 35):
            x, y = train_ids[i : i + 35], train_ids[i + 1 : i + 36]
            x = x[: len(y)]
            hidden = tuple(h.detach() for h in hidden)
            model.zero_grad()
            out, hidden = model(x, hidden)
            loss = loss_fn(out.view(-1, len(vocab)), y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(p.grad, alpha=-lr)
            steps += 1
            if time.perf_counter() - started > budget:
                break
        val = evaluate(valid_ids)
        if val < best:
            best = val
        else:
            lr /= 4.0
    seconds = time.perf_counter() - started
    test_loss = evaluate(test_ids)  # per word token, <eos> included: 245,569 of them
    return {
        "train_seconds": seconds,
        "steps": float(steps),
        "word_perplexity": math.exp(test_loss),
        "valid_word_perplexity": math.exp(best),
        "parameters": float(sum(p.numel() for p in model.parameters())),
    }


# ---------------------------------------------------------------- the transformer


def default_config() -> Any:
    """pipelines/configs/wikitext.yaml, the text workload's default run config."""
    from genops.core.config import load_config

    return load_config(REPO / "pipelines" / "configs" / "wikitext.yaml")


def train_default(
    config: Any, train: list[str], valid: list[str], **update: Any
) -> tuple[Any, Any, Any, float]:
    """Build ``config``'s model and tokenizer on ``train`` and train it with its model spec
    updated by ``update``: (candidate, spec, TrainResult, tokenizer seconds)."""
    from genops.workloads.text import lm
    from genops.workloads.text.steps import build_candidate, train_params

    started = time.perf_counter()
    candidate = build_candidate(config, train, valid)
    tokenize_seconds = time.perf_counter() - started
    spec = candidate.spec.model_copy(update=update)
    result = lm.train(
        candidate.model,
        candidate.train_stream,
        candidate.validation_stream,
        spec.context,
        train_params(spec),
        device=spec.device,
        progress=False,
    )
    return candidate, spec, result, tokenize_seconds


def transformer(budget: float, augmented: bool = False) -> tuple[dict[str, float], Any]:
    """The default config's model trained for ``budget`` seconds; ``augmented``: on the
    counterfactually augmented train split (the ``mitigate`` policy's training text)."""
    from genops.workloads.text import lm
    from genops.workloads.text.gender import augment, corpus_statistics, load_probes

    config = default_config()
    train, valid, test = _lines("train"), _lines("valid"), _lines("test")
    if augmented:
        train = augment(train, load_probes(config.bias))
    candidate, spec, result, tokenize_seconds = train_default(
        config, train, valid, time_budget_s=budget
    )
    scored = time.perf_counter()
    ppl = lm.perplexity(candidate.model, candidate.tokenizer, test, spec.context, spec.device)
    int8 = lm.quantize_dynamic_int8(candidate.model)
    ppl8 = lm.perplexity(int8, candidate.tokenizer, test, spec.context, "cpu")
    return (
        {
            "tokenizer_seconds": tokenize_seconds,
            "train_seconds": result.seconds,
            "steps": float(result.steps),
            "stopped": result.stopped,  # type: ignore[dict-item]
            "precision": result.precision,  # type: ignore[dict-item]
            "word_perplexity": ppl.word_perplexity,
            "test_words": float(ppl.words),
            "bits_per_byte": ppl.bits_per_byte,
            "word_perplexity_int8": ppl8.word_perplexity,
            "int8_increase": ppl8.word_perplexity / ppl.word_perplexity - 1.0,
            "score_seconds": time.perf_counter() - scored,
            "parameters": float(sum(p.numel() for p in candidate.model.parameters())),
            "train_words": float(lm.word_count(train)),
            **_association(candidate, config),
            "corpus_masculine_pronoun_share": float(
                corpus_statistics(train, load_probes(config.bias))["masculine_share"]
            ),
        },
        candidate,
    )


def _association(candidate: Any, config: Any) -> dict[str, float]:
    """How strongly the model prefers masculine over feminine next words after the probe
    templates ("The nurse said that"): log P(masculine) - log P(feminine), natural log,
    averaged over occupations and templates (and its mean absolute value)."""
    import numpy as np

    from genops.workloads.text import lm
    from genops.workloads.text.gender import load_probes, template_preferences

    probes = load_probes(config.bias)
    model = candidate.model

    def score_next(prompts: list[str], words: list[str]) -> np.ndarray:
        return lm.next_word_logprobs(model, candidate.tokenizer, prompts, words)

    prefs = np.asarray(list(template_preferences(score_next, probes).values()), dtype=float)
    return {
        "mean_template_preference": float(prefs.mean()),
        "mean_abs_template_preference": float(np.abs(prefs).mean()),
        "occupations_preferring_masculine": float((prefs.mean(axis=1) > 0).sum()),
        "occupations": float(len(prefs)),
    }


# ---------------------------------------------------------------- generation speed


def _generation(model: Any, tokenizer: Any, device: str, label: str) -> dict[str, float]:
    from genops.workloads.text import lm

    out: dict[str, float] = {}
    for batch in (1, 8):
        times = []
        for repeat in range(3):
            started = time.perf_counter()
            lm.generate(
                model,
                tokenizer,
                ["The"] * batch,
                lm.GenerationParams(max_new_tokens=64, seed=repeat, top_k=50),
            )
            times.append(time.perf_counter() - started)
        out[f"{label}_tokens_per_s_batch{batch}"] = batch * 64 / statistics.median(times)
    firsts = []
    for repeat in range(5):
        started = time.perf_counter()
        next(
            iter(
                lm.stream_tokens(
                    model,
                    tokenizer,
                    "The game",
                    lm.GenerationParams(max_new_tokens=16, seed=repeat),
                )
            )
        )
        firsts.append(time.perf_counter() - started)
    out[f"{label}_time_to_first_token_ms"] = 1000 * statistics.median(firsts)
    return out


def _latency(model: Any, tokenizer: Any, label: str, requests: int = 24) -> dict[str, float]:
    """p50/p99 latency of 1, 4 and 16 concurrent clients through the server's adapter
    (micro-batched), 32 new tokens per request."""
    from types import SimpleNamespace

    from genops.workloads.text import lm
    from genops.workloads.text.serving import TextAdapter

    loaded = lm.LoadedLM(model, tokenizer, int(model.config.n_positions), label == "int8")
    adapter = TextAdapter(SimpleNamespace(lm=loaded, max_prompts=64))
    out: dict[str, float] = {}
    for clients in (1, 4, 16):
        latencies: list[float] = []
        lock = threading.Lock()
        per_client = max(1, requests // clients)

        def client(
            i: int,
            per_client: int = per_client,
            lock: threading.Lock = lock,
            latencies: list[float] = latencies,
        ) -> None:
            for j in range(per_client):
                request = adapter.parse({"prompt": f"The {i} {j}", "max_new_tokens": 32}, 64)
                started = time.perf_counter()
                adapter.generate(request)
                with lock:
                    latencies.append(time.perf_counter() - started)

        wall = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - wall
        latencies.sort()
        out[f"{label}_p50_ms_{clients}_clients"] = 1000 * latencies[len(latencies) // 2]
        out[f"{label}_p99_ms_{clients}_clients"] = (
            1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        )
        out[f"{label}_tokens_per_s_{clients}_clients"] = len(latencies) * 32 / wall
    return out


def _default_budget() -> float:
    budget = default_config().model.time_budget_s
    if budget is None:
        raise SystemExit("wikitext.yaml sets no model.time_budget_s: pass --budget")
    return float(budget)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/text.json")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="training seconds of each (default: wikitext.yaml's model.time_budget_s)",
    )
    parser.add_argument(
        "--no-cda",
        action="store_true",
        help="skip the third model (trained on the counterfactually augmented corpus)",
    )
    args = parser.parse_args()
    if args.budget is None:
        args.budget = _default_budget()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results: dict[str, Any] = {
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "cuda": torch.cuda.is_available(),
            "description": machine(f"torch {torch.__version__}"),
        },
        "budget_seconds": args.budget,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": load_average(),
    }
    results["lstm"] = lstm_baseline(args.budget)
    results["transformer"], candidate = transformer(args.budget)
    results["transformer_beats_lstm"] = (
        results["transformer"]["word_perplexity"] < results["lstm"]["word_perplexity"]
    )
    if not args.no_cda:
        results["transformer_cda"], _ = transformer(args.budget, augmented=True)
    from genops.workloads.text import lm

    model = candidate.model.cpu().eval()
    speed: dict[str, float] = {}
    speed |= _generation(model, candidate.tokenizer, "cpu", "fp32")
    int8 = lm.quantize_dynamic_int8(model)
    speed |= _generation(int8, candidate.tokenizer, "cpu", "int8")
    speed |= _latency(model, candidate.tokenizer, "fp32")
    speed |= _latency(int8, candidate.tokenizer, "int8")
    if torch.cuda.is_available():
        speed |= _generation(model.cuda(), candidate.tokenizer, "cuda", "cuda")
    results["generation"] = speed
    results["load_after"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    lines = [
        "# Text benchmark (WikiText-2)",
        "",
        f"Training budget: {args.budget:.0f} s each, side by side in one process. "
        f"{results['machine']['description']}; measured {results['date']}, load average "
        f"{results['load_before']} before, {results['load_after']} after.",
        "",
        "| model | steps | word-level test perplexity | parameters |",
        "|---|---:|---:|---:|",
        f"| LSTM (pytorch/examples, 2x200, tied) | {results['lstm']['steps']:.0f} | "
        f"{results['lstm']['word_perplexity']:.1f} | {results['lstm']['parameters']:.0f} |",
        f"| GPT-2-style (wikitext.yaml, {results['transformer']['precision']} forward) | "
        f"{results['transformer']['steps']:.0f} | "
        f"{results['transformer']['word_perplexity']:.1f} | "
        f"{results['transformer']['parameters']:.0f} |",
        f"| same, dynamic int8 | | {results['transformer']['word_perplexity_int8']:.1f} | |",
        "",
        f"Targets: the transformer beats the LSTM: {results['transformer_beats_lstm']}; "
        f"perplexity <= 200: {results['transformer']['word_perplexity'] <= 200}.",
        "",
        *_cda_lines(results),
        "| generation | value |",
        "|---|---:|",
        *[f"| {k} | {v:.1f} |" for k, v in speed.items()],
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _cda_lines(results: dict[str, Any]) -> list[str]:
    if "transformer_cda" not in results:
        return []
    base, cda = results["transformer"], results["transformer_cda"]
    rows = [
        ("word-level test perplexity", "word_perplexity", "{:.1f}"),
        (
            "mean log P(masc.) - log P(fem.) after the templates",
            "mean_template_preference",
            "{:+.3f}",
        ),
        ("mean absolute preference", "mean_abs_template_preference", "{:.3f}"),
        ("occupations preferring masculine", "occupations_preferring_masculine", "{:.0f}"),
        ("masculine share of the corpus's pronouns", "corpus_masculine_pronoun_share", "{:.3f}"),
        ("training steps", "steps", "{:.0f}"),
        ("training words", "train_words", "{:.0f}"),
    ]
    return [
        "Counterfactual data augmentation (the `mitigate` policy), same budget, side by side:",
        "",
        "| | original corpus | augmented corpus |",
        "|---|---:|---:|",
        *[f"| {label} | {fmt.format(base[k])} | {fmt.format(cda[k])} |" for label, k, fmt in rows],
        f"| perplexity cost | | {cda['word_perplexity'] / base['word_perplexity'] - 1:+.1%} |",
        "",
    ]


if __name__ == "__main__":
    main()
