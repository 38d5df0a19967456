"""The language-model pieces: tokenizer, perplexity normalisation, generation, streaming,
quantisation, save/load, LoRA fine-tuning of a local checkpoint, memorisation, diversity and
request validation."""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from genops.core.serving.request import RequestError
from genops.workloads.text import lm
from genops.workloads.text.metrics import SpanIndex, distinct_n, repetition_rate
from genops.workloads.text.request import parse_text_request

CORPUS = [
    " = Valkyria Chronicles = ",
    " The game began development in 2010 , carrying over a large portion of the work .",
    " He said that the nurse went home because she was tired .",
    " The engineer said that he would build the bridge in 1990 .",
] * 20


@pytest.fixture(scope="module")
def tokenizer() -> object:
    return lm.train_tokenizer(CORPUS, vocab_size=400, min_frequency=1)


@pytest.fixture(scope="module")
def model(tokenizer: object) -> object:
    torch.manual_seed(0)
    params = lm.LMParams(
        vocab_size=tokenizer.get_vocab_size(), context=32, n_layer=1, n_head=2, n_embd=32
    )
    return lm.build_model(params, eos_id=tokenizer.token_to_id(lm.EOS)).eval()


def test_tokenizer_is_lossless_and_eos_is_id_zero(tokenizer: object) -> None:
    assert tokenizer.token_to_id(lm.EOS) == 0
    text = "Ünïcode @,@ 152 <unk> \t tabs"
    assert tokenizer.decode(tokenizer.encode(text).ids) == text


def test_word_count_is_words_plus_one_eos_per_line() -> None:
    assert lm.word_count(["a b c", "", " = T = "]) == (3 + 1) + (0 + 1) + (3 + 1)


class _Uniform(torch.nn.Module):
    """A model whose every next-token distribution is uniform over ``vocab`` tokens."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocab))


def test_total_nll_scores_every_token_once_by_hand() -> None:
    """Uniform over V tokens: every token costs log V nats, whatever the windows."""
    vocab, context = 7, 8
    stream = np.arange(50, dtype=np.int32) % vocab
    nll = lm.total_nll(_Uniform(vocab), stream, context, eos_id=0, device=torch.device("cpu"))
    assert nll == pytest.approx(len(stream) * math.log(vocab))


def test_word_perplexity_normalises_by_words_not_tokens() -> None:
    ppl = lm.Perplexity(total_nll=100.0, tokens=50, words=20, bytes=80)
    assert ppl.token_perplexity == pytest.approx(math.exp(2.0))
    assert ppl.word_perplexity == pytest.approx(math.exp(5.0))
    assert ppl.bits_per_byte == pytest.approx(100.0 / math.log(2) / 80)


def test_training_lowers_validation_loss_and_perplexity(tokenizer: object) -> None:
    stream = lm.encode_stream(tokenizer, CORPUS)
    torch.manual_seed(0)
    model = lm.build_model(
        lm.LMParams(
            vocab_size=tokenizer.get_vocab_size(),
            context=32,
            n_layer=1,
            n_head=2,
            n_embd=32,
            dropout=0.0,
        )
    )
    before = lm.perplexity(model, tokenizer, CORPUS[:8], 32, "cpu").word_perplexity
    points: list[dict[str, float]] = []
    result = lm.train(
        model,
        stream,
        stream,
        32,
        lm.TrainParams(
            max_steps=60, eval_every=20, batch_size=8, warmup_steps=5, learning_rate=3e-3
        ),
        device="cpu",
        on_eval=lambda step, p: points.append(p),
        progress=False,
    )
    after = lm.perplexity(model, tokenizer, CORPUS[:8], 32, "cpu").word_perplexity
    assert [p["step"] for p in points] == [20.0, 40.0, 60.0]
    assert points[-1]["validation_loss"] < points[0]["validation_loss"]
    assert after < before / 5
    assert result.best_validation_loss == min(p["validation_loss"] for p in points)


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ({"avx2", "avx512f", "avx512bw"}, False),  # AVX512 alone: bf16 would be emulated
        ({"avx512f", "avx512_bf16"}, True),
        ({"amx_tile", "amx_bf16"}, True),
        (set(), False),  # no /proc/cpuinfo
    ],
)
def test_bf16_counts_as_native_only_with_the_cpu_flags(
    monkeypatch: pytest.MonkeyPatch, flags: set[str], native: bool
) -> None:
    monkeypatch.setattr(lm, "_cpu_flags", lambda: flags)
    assert lm.bf16_native(torch.device("cpu")) is native


def test_training_records_its_precision_and_keeps_fp32_weights(
    tokenizer: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bf16 autocast where the CPU has it (forced here), fp32 when the config turns it off;
    either way the weights, and so the saved model and its scoring, stay fp32."""
    from genops.workloads.text.config import LanguageModelSpec
    from genops.workloads.text.steps import train_params

    monkeypatch.setattr(lm, "_cpu_flags", lambda: {"avx512_bf16"})
    stream = lm.encode_stream(tokenizer, CORPUS)
    for bf16, expected in ((True, "bf16"), (False, "fp32")):
        torch.manual_seed(0)
        model = lm.build_model(
            lm.LMParams(vocab_size=tokenizer.get_vocab_size(), context=32, n_layer=1, n_embd=32)
        )
        params = train_params(
            LanguageModelSpec(
                batch_size=8, warmup_steps=2, learning_rate=3e-3, eval_every=15, bf16=bf16
            ),
            max_steps=30,
        )
        assert params.bf16 is bf16
        result = lm.train(model, stream, stream, 32, params, device="cpu", progress=False)
        assert result.precision == expected
        assert result.history[-1]["validation_loss"] < result.history[0]["validation_loss"]
        assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_learning_rate_anneals_by_time_when_a_budget_ends_training() -> None:
    """A time budget far shorter than ``max_steps`` still decays the rate: progress is the
    further of steps and time (warm-up by steps first)."""
    params = lm.TrainParams(
        learning_rate=1e-3, warmup_steps=10, max_steps=100_000, time_budget_s=100.0
    )
    assert lm._lr(0, params) == pytest.approx(1e-4)
    assert lm._lr(9, params) == pytest.approx(1e-3)
    # 10 s of warm-up, then half of the remaining 90 s: the cosine is at its midpoint
    mid = lm._progress(500, 55.0, params, warm=10.0)
    assert mid == pytest.approx(0.5)
    floor = params.min_lr_ratio
    assert lm._lr(500, params, mid) == pytest.approx(1e-3 * (floor + (1 - floor) / 2))
    # at the budget the rate is at its floor; by steps alone it would still be at its peak
    assert lm._lr(500, params, lm._progress(500, 100.0, params, 10.0)) == pytest.approx(
        1e-3 * floor
    )
    assert lm._progress(500, 0.0, params, None) < 0.01
    # without a budget the steps decide
    by_steps = lm.TrainParams(learning_rate=1e-3, warmup_steps=0, max_steps=100)
    assert lm._progress(50, 1e6, by_steps, None) == pytest.approx(0.5)


def test_stream_matches_greedy_generation_and_stops(model: object, tokenizer: object) -> None:
    greedy = lm.GenerationParams(max_new_tokens=12, temperature=0.0)
    full = lm.generate(model, tokenizer, ["The game"], greedy)[0]
    pieces = list(lm.stream_tokens(model, tokenizer, "The game", greedy))
    assert "".join(pieces) == full
    assert len(pieces) >= 2
    if full.strip():
        stop = full.strip()[0]
        cut = lm.generate(
            model,
            tokenizer,
            ["The game"],
            lm.GenerationParams(max_new_tokens=12, temperature=0.0, stop=(stop,)),
        )[0]
        assert stop not in cut and full.startswith(cut)


def test_seeded_sampling_is_reproducible(model: object, tokenizer: object) -> None:
    params = lm.GenerationParams(max_new_tokens=10, seed=3, top_k=20)
    first = lm.generate(model, tokenizer, ["The", ""], params)
    assert first == lm.generate(model, tokenizer, ["The", ""], params)
    assert len(first) == 2


def test_int8_copy_leaves_the_model_and_scores_close(model: object, tokenizer: object) -> None:
    names = {type(m).__name__ for m in model.modules()}
    int8 = lm.quantize_dynamic_int8(model)
    assert {type(m).__name__ for m in model.modules()} == names  # untouched
    assert "Conv1D" not in {type(m).__name__ for m in int8.modules()}
    fp32 = lm.perplexity(model, tokenizer, CORPUS[:4], 32, "cpu").word_perplexity
    q = lm.perplexity(int8, tokenizer, CORPUS[:4], 32, "cpu").word_perplexity
    assert q == pytest.approx(fp32, rel=0.05)


def test_save_and_load_round_trip(model: object, tokenizer: object, tmp_path: Path) -> None:
    lm.save(model, tokenizer, tmp_path / "lm", quantize=False)
    loaded = lm.load(tmp_path / "lm", device="cpu")
    ids = torch.tensor([tokenizer.encode("The game").ids])
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(input_ids=ids).logits, model(input_ids=ids).logits)
    assert loaded.context == 32 and not loaded.quantized
    assert lm.load(tmp_path / "lm", quantize=True).quantized


def test_lora_fine_tunes_a_local_checkpoint(
    model: object, tokenizer: object, tmp_path: Path
) -> None:
    model.save_pretrained(tmp_path / "ckpt")
    base = lm.load_pretrained(tmp_path / "ckpt")
    wrapped = lm.add_lora(base, r=4, alpha=8)
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    stream = lm.encode_stream(tokenizer, CORPUS)
    frozen = {n: p.detach().clone() for n, p in wrapped.named_parameters() if not p.requires_grad}
    lm.train(
        wrapped,
        stream,
        stream,
        32,
        lm.TrainParams(max_steps=5, eval_every=5, batch_size=4, warmup_steps=1),
        device="cpu",
        progress=False,
    )
    for name, param in wrapped.named_parameters():
        if name in frozen:
            assert torch.equal(param, frozen[name]), name
    lm.save(wrapped, tokenizer, tmp_path / "merged")
    assert "lora" not in (tmp_path / "merged" / "model" / "config.json").read_text().lower()


def test_memorisation_finds_planted_copies_only() -> None:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 5000, 20_000)
    index = SpanIndex(train, span=20)
    copied = train[500:600]
    fresh = rng.integers(0, 5000, 100)
    assert index.share_memorised([copied]) == (1.0, 81)
    share, windows = index.share_memorised([fresh])
    assert share == 0.0 and windows == 81
    assert index.share_memorised([fresh[:10]]) == (pytest.approx(float("nan"), nan_ok=True), 0)


def test_diversity_by_hand() -> None:
    assert distinct_n(["a b a b", "c"], 1) == pytest.approx(3 / 5)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert repetition_rate(["a b c d a b c d"], n=4) == pytest.approx(1 - 4 / 5)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"prompt": "a", "prompts": ["b"]}, "prompt"),
        ({"prompts": []}, "prompts"),
        ({"prompts": ["a", 3]}, "prompts[1]"),
        ({"prompt": "a", "max_new_tokens": 0}, "max_new_tokens"),
        ({"prompt": "a", "max_new_tokens": 1e400}, "max_new_tokens"),
        ({"prompt": "a", "temperature": "hot"}, "temperature"),
        ({"prompt": "a", "top_p": 0}, "top_p"),
        ({"prompt": "a", "seed": 1.5}, "seed"),
        ({"prompt": "a", "stop": [""]}, "stop"),
        ({"prompts": ["a", "b"], "stream": True}, "stream"),
        ({"prompt": "a", "colour": 1}, "body"),
    ],
)
def test_bad_requests_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(RequestError, match="^" + re.escape(field)):
        parse_text_request(body, max_prompts=4, context=64)


def test_request_caps_prompts_and_tokens() -> None:
    with pytest.raises(RequestError, match="limit of 2"):
        parse_text_request({"prompts": ["a", "b", "c"]}, max_prompts=2, context=64)
    ok = parse_text_request({"prompt": "a", "max_new_tokens": 63, "stop": "."}, 2, 64)
    assert ok.params.max_new_tokens == 63 and ok.params.stop == (".",)


def test_tuning_trials_train_the_candidates_and_the_best_comes_back(tmp_path: Path) -> None:
    """The text objective through the core's study: the validation loss is reported to the
    pruner every evaluation, and a learning rate that cannot learn loses."""
    from genops.core.config import parse_config
    from genops.core.tuning.study import create_study, run_worker, summarize
    from genops.workloads.text.documents import Document
    from genops.workloads.text.steps import tuning_objective, write_documents

    docs = [Document("x.txt", i + 1, t) for i, t in enumerate(CORPUS)]
    write_documents(docs, tmp_path / "train.jsonl.gz")
    write_documents(docs[:8], tmp_path / "valid.jsonl.gz")
    config = parse_config(
        {
            "pipeline": "text-lm",
            "dataset": {"name": "toy", "source": str(tmp_path), "format": "txt"},
            "tokenizer": {"vocab_size": 300, "min_frequency": 1},
            "model": {
                "context": 32,
                "n_layer": 1,
                "n_head": 2,
                "n_embd": 32,
                "batch_size": 8,
                "eval_every": 10,
                "eval_batches": 2,
                "warmup_steps": 2,
                "time_budget_s": None,
                "device": "cpu",
            },
            "tuning": {
                "enabled": True,
                "n_trials": 2,
                "n_workers": 1,
                "trial_epochs": 3,
                "objective": {"report_every": 1},
                "search_space": {
                    "learning_rate": {"type": "float", "low": 1e-9, "high": 1e-2, "log": True}
                },
                "enqueue": [{"learning_rate": 5e-3}, {"learning_rate": 1e-9}],
            },
        }
    )
    objective, build = tuning_objective(
        config, str(tmp_path / "train.jsonl.gz"), str(tmp_path / "valid.jsonl.gz"), {"epochs": 3}
    )
    storage = f"journal://{tmp_path / 'study.journal'}"
    create_study(config.tuning, storage, "text")
    histories: list[list[dict[str, float]]] = []
    counts = run_worker(
        config.tuning,
        storage,
        "text",
        0,
        objective,
        build,
        lambda n, p, state, v, h: histories.append(h),
    )
    # the hopeless trial is pruned or completes worse; every evaluation reaches the pruner
    assert counts["complete"] >= 1 and counts["complete"] + counts["pruned"] == 2
    assert len(histories[0]) == 3 and 1 <= len(histories[1]) <= 3  # evaluations of 10 steps
    summary = summarize(config.tuning, storage, "text")
    assert summary.best_params == {"learning_rate": 5e-3}


def test_wikitext_perplexity_covers_every_test_word_token() -> None:
    """Blank lines are no documents, but their newlines are <eos> tokens of the published
    count: the scored text is the whole test file, 245,569 word tokens."""
    from genops.core.config import load_config
    from genops.workloads.text.corpus import read_corpus
    from genops.workloads.text.steps import scoring_lines
    from tests.conftest import REPO

    config = load_config(REPO / "pipelines" / "configs" / "wikitext.yaml")
    test_docs = read_corpus(config.dataset)["test"]
    lines = scoring_lines(config, test_docs)
    assert len(lines) == 4_358 and lm.word_count(lines) == 245_569
    assert lm.word_count([d.text for d in test_docs]) < 245_569  # what documents alone give


def test_stream_holds_back_a_stop_string_and_matches_generate(
    model: object, tokenizer: object
) -> None:
    greedy = lm.GenerationParams(max_new_tokens=16, temperature=0.0)
    full = lm.generate(model, tokenizer, ["The"], greedy)[0]
    if len(full) < 4:
        pytest.skip("the untrained model stopped at once")
    stop = full[2:4]  # a stop string that begins inside the text
    params = lm.GenerationParams(max_new_tokens=16, temperature=0.0, stop=(stop,))
    streamed = "".join(lm.stream_tokens(model, tokenizer, "The", params))
    assert streamed == lm.generate(model, tokenizer, ["The"], params)[0] == full[:2]


def test_seeded_generation_leaves_the_global_random_state(model: object, tokenizer: object) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    lm.generate(model, tokenizer, ["The"], lm.GenerationParams(max_new_tokens=4, seed=7))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "a\ud800b"}, "prompts[0]: not valid Unicode"),
        ({"prompt": "a", "stop": ["\udfff"]}, "stop[0]: not valid Unicode"),
        ({"prompt": "a", "temperature": 1e-40}, "temperature: 1e-40 is below 0.01"),
    ],
)
def test_text_the_model_cannot_take_is_a_400(body: dict[str, object], field: str) -> None:
    with pytest.raises(RequestError, match="^" + re.escape(field)):
        parse_text_request(body, max_prompts=4, context=64)


def test_a_checkpoint_without_its_tokenizer_is_refused(model: object, tmp_path: Path) -> None:
    from genops.core.config import parse_config
    from genops.workloads.text.steps import build_candidate

    model.save_pretrained(tmp_path / "ckpt")
    config = parse_config(
        {
            "pipeline": "text-lm",
            "dataset": {"name": "toy", "source": str(tmp_path), "format": "txt"},
            "model": {"pretrained": str(tmp_path / "ckpt"), "lora": True},
        }
    )
    with pytest.raises(ValueError, match=r"^model.pretrained: .* has no tokenizer.json"):
        build_candidate(config, CORPUS, CORPUS[:4])


def test_the_int8_release_is_blessed_only_within_its_limit() -> None:
    from genops.core.config import parse_config

    base = {"pipeline": "text-lm", "dataset": {"name": "toy", "source": "/x", "format": "txt"}}
    on = parse_config(
        {
            **base,
            "evaluation": {"max_quantized_increase": 0.03},
            "blessing": {"max_metrics": {"word_perplexity": 300.0}},
        }
    )
    assert on.blessing.max_metrics == {
        "word_perplexity": 300.0,
        "quantized_perplexity_increase": 0.03,
    }
    off = parse_config({**base, "evaluation": {"quantize": False}})
    assert "quantized_perplexity_increase" not in off.blessing.max_metrics
