"""The language model: a byte-level BPE tokenizer trained on the corpus (``tokenizers``) and a
GPT-2-style decoder built from a config with Hugging Face ``transformers`` (nothing is
downloaded). Training, evaluation (word-level perplexity comparable with published WikiText-2
figures, bits per byte), generation with the KV cache, next-word scoring for the bias probes,
LoRA fine-tuning of a local checkpoint (``peft``) and post-training dynamic int8 quantisation.

Saved as a folder: ``model/`` (``save_pretrained``: config, safetensors and the tokenizer in
Hugging Face's layout), ``tokenizer.json`` and ``genops_lm.json`` (quantise at load, the
context length).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genops.core.device import resolve_device

EOS = "<|endoftext|>"
META_FILE = "genops_lm.json"

EvalCallback = Callable[[int, dict[str, float]], None]


# ---------------------------------------------------------------- tokenizer


def train_tokenizer(texts: Sequence[str], vocab_size: int, min_frequency: int = 2) -> Any:
    """A byte-level BPE tokenizer (lossless on any text) with ``<|endoftext|>`` as id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tokenizer


def encode_stream(tokenizer: Any, texts: Sequence[str], batch: int = 2000) -> np.ndarray:
    """All texts as one token stream, each text followed by a newline (the WikiText
    convention: a line break stands for ``<eos>``), as int32."""
    parts: list[np.ndarray] = []
    for start in range(0, len(texts), batch):
        chunk = [t + "\n" for t in texts[start : start + batch]]
        for enc in tokenizer.encode_batch(chunk, add_special_tokens=False):
            parts.append(np.asarray(enc.ids, dtype=np.int32))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)


def word_count(texts: Sequence[str]) -> int:
    """Word-level LM tokens: whitespace-separated words plus one ``<eos>`` per line (the count
    published WikiText-2 perplexities are normalised by: 245,569 for the test split)."""
    return sum(len(t.split()) + 1 for t in texts)


# ---------------------------------------------------------------- model


@dataclass(frozen=True)
class LMParams:
    vocab_size: int = 8000
    context: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.1


def build_model(params: LMParams, eos_id: int = 0) -> Any:
    """A randomly initialised GPT-2 decoder (tied input/output embeddings)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=params.vocab_size,
        n_positions=params.context,
        n_embd=params.n_embd,
        n_layer=params.n_layer,
        n_head=params.n_head,
        resid_pdrop=params.dropout,
        embd_pdrop=params.dropout,
        attn_pdrop=params.dropout,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    return GPT2LMHeadModel(config)


def context_length(model: Any) -> int:
    """The longest sequence the model takes (GPT-2's ``n_positions``, else
    ``max_position_embeddings``)."""
    config = model.config
    value = getattr(config, "n_positions", None) or config.max_position_embeddings
    return int(value)


def load_pretrained(path: str | Path) -> Any:
    """A causal LM checkpoint saved with ``save_pretrained`` (a local folder)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path))


def add_lora(model: Any, r: int = 8, alpha: int = 16, dropout: float = 0.05) -> Any:
    """Wrap ``model`` with LoRA adapters on its attention and MLP projections (peft)."""
    from peft import LoraConfig, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = sorted(names & {"c_attn", "c_proj", "c_fc", "q_proj", "k_proj", "v_proj", "o_proj"})
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        fan_in_fan_out=any(type(m).__name__ == "Conv1D" for m in model.modules()),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


@dataclass(frozen=True)
class TrainParams:
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    batch_size: int = 32
    max_steps: int = 4000
    time_budget_s: float | None = None
    eval_every: int = 200
    eval_batches: int = 16
    patience: int = 3
    seed: int = 0
    bf16: bool = True  # where the device computes bf16 natively: see bf16_native
    min_lr_ratio: float = 0.1  # the cosine ends at this share of the peak learning rate


@dataclass
class TrainResult:
    steps: int
    seconds: float
    best_validation_loss: float
    stopped: str  # "max_steps" | "time_budget" | "early_stopping"
    history: list[dict[str, float]] = field(default_factory=list)
    precision: str = "fp32"  # of the forward pass: "bf16" (autocast) or "fp32"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_native(dev: Any) -> bool:
    """Whether ``dev`` multiplies bf16 matrices in hardware: CUDA with bf16 support, or a CPU
    with AVX512-BF16 or AMX-BF16 (Linux flags). Elsewhere bf16 is emulated, slower than fp32,
    and training stays in fp32."""
    if dev.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if dev.type == "cpu":
        return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})
    return False


def _windows(stream: np.ndarray, context: int, starts: np.ndarray) -> torch.Tensor:
    idx = starts[:, None] + np.arange(context + 1)[None, :]
    return torch.from_numpy(stream[idx].astype(np.int64))


def _progress(step: int, elapsed: float, params: TrainParams, warm: float | None) -> float:
    """How far training is after warm-up, in [0, 1]: by steps toward ``max_steps`` or by time
    toward ``time_budget_s`` (``warm``: the seconds warm-up took), whichever is further on.
    A time budget that ends training early then still anneals the learning rate."""
    done = (step - params.warmup_steps) / max(1, params.max_steps - params.warmup_steps)
    if params.time_budget_s is not None and warm is not None:
        span = max(1e-9, params.time_budget_s - warm)
        done = max(done, (elapsed - warm) / span)
    return min(1.0, max(0.0, done))


def _lr(step: int, params: TrainParams, progress: float | None = None) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr_ratio`` of the peak
    over the rest of training (``progress``: see :func:`_progress`; by steps if not given)."""
    if step < params.warmup_steps:
        return params.learning_rate * (step + 1) / params.warmup_steps
    if progress is None:
        progress = _progress(step, 0.0, params, None)
    floor = params.min_lr_ratio
    return params.learning_rate * (floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _loss(model: Any, batch: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=batch[:, :-1]).logits
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), batch[:, 1:].reshape(-1)
    )


def validation_loss(
    model: Any, stream: np.ndarray, context: int, batches: int, batch_size: int, device: Any
) -> float:
    """Mean token loss on fixed, evenly spaced windows of the validation stream."""
    if len(stream) < context + 2:
        raise ValueError(
            f"the validation text has {len(stream)} tokens; it needs at least context + 2 "
            f"({context + 2})"
        )
    count = min(batches * batch_size, len(stream) - context - 1)
    starts = np.linspace(0, len(stream) - context - 2, count).astype(np.int64)
    model.eval()
    losses = []
    with torch.inference_mode():
        for i in range(0, len(starts), batch_size):
            batch = _windows(stream, context, starts[i : i + batch_size]).to(device)
            losses.append(float(_loss(model, batch)) * len(batch))
    model.train()
    return float(sum(losses) / len(starts))


def train(
    model: Any,
    train_stream: np.ndarray,
    validation_stream: np.ndarray,
    context: int,
    params: TrainParams,
    device: str = "auto",
    on_eval: EvalCallback | None = None,
    progress: bool = True,
) -> TrainResult:
    """AdamW with linear warm-up and cosine decay on random windows of the train stream;
    validation loss every ``eval_every`` steps, early stopping after ``patience`` evaluations
    without improvement (the best weights are restored). Seeded."""
    from tqdm.auto import tqdm

    dev = resolve_device(device)
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    model.to(dev).train()
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": params.weight_decay},
        {"params": no_decay},
    ]
    optimizer = torch.optim.AdamW(
        groups,
        lr=params.learning_rate,
    )
    # bf16 autocast for the forward pass (weights, optimiser and loss stay fp32): 1.6x the
    # steps per second of fp32 on a 2-core AVX512-BF16 CPU, for the same loss at equal steps
    # (benchmarks/results/text-precision.md)
    autocast = params.bf16 and bf16_native(dev)
    best, best_state, bad, stopped = math.inf, None, 0, "max_steps"
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    bar = tqdm(total=params.max_steps, desc="train", unit="step", disable=not progress)
    step, warm, rate = 0, None, params.learning_rate
    for step in range(params.max_steps):
        elapsed = time.perf_counter() - started
        if warm is None and step >= params.warmup_steps:
            warm = elapsed
        rate = _lr(step, params, _progress(step, elapsed, params, warm))
        for group in optimizer.param_groups:
            group["lr"] = rate
        starts = rng.integers(0, len(train_stream) - context - 1, params.batch_size)
        batch = _windows(train_stream, context, starts).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            loss = _loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        bar.update(1)
        last = step + 1 == params.max_steps
        over_budget = (
            params.time_budget_s is not None
            and time.perf_counter() - started > params.time_budget_s
        )
        if (step + 1) % params.eval_every == 0 or last or over_budget:
            val = validation_loss(
                model, validation_stream, context, params.eval_batches, params.batch_size, dev
            )
            point = {
                "step": float(step + 1),
                "train_loss": float(loss.detach()),
                "validation_loss": val,
                "validation_perplexity": math.exp(min(val, 50.0)),
                "learning_rate": rate,
                "seconds": time.perf_counter() - started,
            }
            history.append(point)
            bar.set_postfix(val_loss=f"{val:.3f}")
            if on_eval is not None:
                on_eval(step + 1, point)
            if val < best - 1e-4:
                best, bad = val, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
                if bad >= params.patience:
                    stopped = "early_stopping"
                    break
        if over_budget:
            stopped = "time_budget"
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        step + 1,
        time.perf_counter() - started,
        best,
        stopped,
        history,
        "bf16" if autocast else "fp32",
    )


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Perplexity:
    total_nll: float  # nats, over every token of the text
    tokens: int
    words: int
    bytes: int

    @property
    def token_perplexity(self) -> float:
        return math.exp(self.total_nll / max(1, self.tokens))

    @property
    def word_perplexity(self) -> float:
        """exp(total NLL / word-level tokens): comparable with published word-level figures."""
        return math.exp(self.total_nll / max(1, self.words))

    @property
    def bits_per_byte(self) -> float:
        return self.total_nll / math.log(2) / max(1, self.bytes)


def total_nll(
    model: Any, stream: np.ndarray, context: int, eos_id: int, device: Any, batch_size: int = 16
) -> float:
    """The negative log-likelihood (nats) of every token of ``stream``, each scored with up to
    ``context - 1`` tokens of history: windows overlap by half; the first token is scored
    after ``<|endoftext|>``."""
    ids = np.concatenate([[eos_id], stream]).astype(np.int64)
    stride = max(1, context // 2)
    spans: list[tuple[int, int]] = []  # (window start, first scored position in the window)
    start = 0
    while True:
        end = min(start + context, len(ids))
        first = 1 if start == 0 else context - stride
        spans.append((start, first))
        if end == len(ids):
            break
        start += stride
    nll = 0.0
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(spans), batch_size):
            group = spans[i : i + batch_size]
            windows = [ids[s : s + context] for s, _ in group]
            width = max(len(w) for w in windows)
            batch = np.full((len(windows), width), eos_id, dtype=np.int64)
            mask = np.zeros((len(windows), width), dtype=bool)
            for row, (w, (_, first)) in enumerate(zip(windows, group, strict=True)):
                batch[row, : len(w)] = w
                mask[row, first : len(w)] = True
            tensor = torch.from_numpy(batch).to(device)
            logits = model(input_ids=tensor).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            target = tensor[:, 1:]
            token_logp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).cpu().numpy()
            nll -= float(token_logp[mask[:, 1:]].sum())
    return nll


def perplexity(
    model: Any, tokenizer: Any, texts: Sequence[str], context: int, device: str = "auto"
) -> Perplexity:
    """Perplexity of ``texts`` (lines; each followed by a newline, the ``<eos>``)."""
    dev = resolve_device(device)
    model.to(dev)
    stream = encode_stream(tokenizer, texts)
    nll = total_nll(model, stream, context, tokenizer.token_to_id(EOS), dev)
    size = sum(len(t.encode("utf-8")) + 1 for t in texts)
    return Perplexity(nll, len(stream), word_count(texts), size)


# ---------------------------------------------------------------- generation

_GENERATE_LOCK = threading.Lock()  # seeded sampling uses torch's global generator


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


def _cut(text: str, stop: Sequence[str]) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text


def generate(
    model: Any, tokenizer: Any, prompts: Sequence[str], params: GenerationParams, device: Any = None
) -> list[str]:
    """Continuations of ``prompts`` (one batch, left-padded, KV cache on)."""
    dev = device or next(model.parameters()).device
    eos = tokenizer.token_to_id(EOS)
    encoded = [tokenizer.encode(p or EOS, add_special_tokens=False).ids for p in prompts]
    limit = context_length(model) - params.max_new_tokens
    encoded = [ids[-limit:] if limit > 0 else ids[-1:] for ids in encoded]
    width = max(len(e) for e in encoded)
    input_ids = torch.full((len(encoded), width), eos, dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, ids in enumerate(encoded):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention[row, width - len(ids) :] = 1
    sample = params.temperature > 0
    kwargs: dict[str, Any] = {
        "max_new_tokens": params.max_new_tokens,
        "do_sample": sample,
        "pad_token_id": eos,
        "eos_token_id": eos,
        "use_cache": True,
    }
    if sample:
        kwargs.update(temperature=params.temperature, top_k=params.top_k, top_p=params.top_p)
    devices = [dev] if getattr(dev, "type", "cpu") == "cuda" else []
    with _GENERATE_LOCK, torch.inference_mode(), torch.random.fork_rng(devices=devices):
        # a seeded request draws from its own stream: the caller's (a training run's)
        # random state is left as it was
        if params.seed is not None:
            torch.manual_seed(params.seed)
        out = model.generate(
            input_ids=input_ids.to(dev), attention_mask=attention.to(dev), **kwargs
        )
    texts = tokenizer.decode_batch(out[:, width:].cpu().tolist(), skip_special_tokens=True)
    return [_cut(t, params.stop) for t in texts]


def _held_back(text: str, stop: Sequence[str]) -> int:
    """How many trailing characters of ``text`` could still begin a stop string."""
    keep = 0
    for s in stop:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                keep = max(keep, k)
                break
    return keep


def stream_tokens(
    model: Any, tokenizer: Any, prompt: str, params: GenerationParams, device: Any = None
) -> Iterator[str]:
    """The continuation of one prompt, piece by piece as tokens are sampled (KV cache). The
    pieces join to what :func:`generate` returns for the same greedy request: text that could
    begin a stop string is held back until it cannot, and a partial UTF-8 character waits."""
    dev = device or next(model.parameters()).device
    eos = tokenizer.token_to_id(EOS)
    ids = tokenizer.encode(prompt or EOS, add_special_tokens=False).ids
    limit = max(1, context_length(model) - params.max_new_tokens)
    ids = ids[-limit:]
    generator = torch.Generator()
    if params.seed is not None:
        generator.manual_seed(params.seed)
    else:
        generator.seed()
    emitted, out_ids = 0, []
    past = None
    current = torch.tensor([ids], device=dev)
    text = ""
    stopped = False
    with torch.inference_mode():
        for _ in range(params.max_new_tokens):
            result = model(input_ids=current, past_key_values=past, use_cache=True)
            past = result.past_key_values
            token = _sample(result.logits[0, -1].float().cpu(), params, generator)
            if token == eos:
                break
            out_ids.append(token)
            text = tokenizer.decode(out_ids, skip_special_tokens=True)
            cut = _cut(text, params.stop)
            if cut != text:
                text, stopped = cut, True
            ready = len(text) - (0 if stopped else _held_back(text, params.stop))
            while ready > emitted and text[ready - 1] == "\ufffd":
                ready -= 1  # wait for the rest of a UTF-8 character
            if ready > emitted:
                yield text[emitted:ready]
                emitted = ready
            if stopped:
                return
            current = torch.tensor([[token]], device=dev)
    if len(text) > emitted:
        yield text[emitted:]


def _sample(logits: torch.Tensor, params: GenerationParams, generator: torch.Generator) -> int:
    if params.temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / params.temperature
    if params.top_k > 0:
        kth = torch.topk(logits, min(params.top_k, logits.numel())).values[-1]
        logits = torch.where(logits < kth, torch.tensor(-math.inf), logits)
    probs = torch.softmax(logits, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, 0) - sorted_probs < params.top_p
        filtered = torch.zeros_like(probs)
        filtered[order[keep]] = probs[order[keep]]
        probs = filtered / filtered.sum()
    return int(torch.multinomial(probs, 1, generator=generator))


def next_word_logprobs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    words: Sequence[str],
    batch_size: int = 64,
) -> np.ndarray:
    """log P(word | prompt) for each prompt and word (a word is the tokens of ``" " + word``;
    its probability is the product over its tokens), shape (len(prompts), len(words)).
    Every (prompt, word) sequence is scored in right-padded batches."""
    dev = next(model.parameters()).device
    bases = [tokenizer.encode(p, add_special_tokens=False).ids for p in prompts]
    conts = [tokenizer.encode(" " + w, add_special_tokens=False).ids for w in words]
    pairs = [(i, j) for i in range(len(prompts)) for j in range(len(words))]
    out = np.zeros((len(prompts), len(words)))
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            seqs = [bases[i] + conts[j] for i, j in chunk]
            width = max(len(seq) for seq in seqs)
            ids = torch.zeros((len(seqs), width), dtype=torch.long)
            for row, seq in enumerate(seqs):
                ids[row, : len(seq)] = torch.tensor(seq)
            logp = torch.log_softmax(model(input_ids=ids.to(dev)).logits.float(), dim=-1).cpu()
            for row, (i, j) in enumerate(chunk):
                first = len(bases[i])
                positions = torch.arange(first - 1, first + len(conts[j]) - 1)
                targets = ids[row, positions + 1]
                out[i, j] = float(logp[row, positions, targets].sum())
    return out


# ---------------------------------------------------------------- quantisation, save, load


def quantize_dynamic_int8(model: Any) -> Any:
    """Post-training dynamic int8 quantisation of every linear layer (GPT-2's ``Conv1D``
    projections are turned into the equivalent ``nn.Linear`` first, on a copy: ``model`` is
    left as it was). CPU only."""
    import copy
    import warnings

    from torch.ao.quantization import quantize_dynamic

    model = _conv1d_to_linear(copy.deepcopy(model).cpu())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _conv1d_to_linear(model: Any) -> Any:
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if type(child).__name__ == "Conv1D":
                linear = torch.nn.Linear(child.weight.shape[0], child.weight.shape[1])
                linear.weight.data = child.weight.data.t().contiguous()
                linear.bias.data = child.bias.data.clone()
                setattr(module, child_name, linear)
    return model


def save(model: Any, tokenizer: Any, directory: str | Path, quantize: bool = False) -> Path:
    """Write ``model/`` (merged weights when LoRA-wrapped), ``tokenizer.json`` and the meta."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(directory / "model")
    tokenizer.save(str(directory / "tokenizer.json"))
    # the same tokenizer in Hugging Face's layout beside the weights: the folder alone loads
    # with AutoTokenizer/AutoModelForCausalLM (KServe's Hugging Face runtime, vLLM)
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=EOS, eos_token=EOS, pad_token=EOS
    ).save_pretrained(directory / "model")
    meta = {"quantize": quantize, "context": context_length(model)}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))
    return directory


@dataclass
class LoadedLM:
    model: Any
    tokenizer: Any
    context: int
    quantized: bool


def load(directory: str | Path, device: str = "auto", quantize: bool | None = None) -> LoadedLM:
    """The saved model (int8-quantised on CPU when its meta says so, or ``quantize``)."""
    from tokenizers import Tokenizer

    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text())
    model = load_pretrained(directory / "model")
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    wants_int8 = meta.get("quantize", False) if quantize is None else quantize
    if wants_int8:
        model = quantize_dynamic_int8(model)
    else:
        model.to(resolve_device(device))
    model.eval()
    return LoadedLM(model, tokenizer, int(meta["context"]), bool(wants_int8))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
