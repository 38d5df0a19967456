"""Gender-association checks of the ``text-lm`` pipeline and its mitigation (counterfactual
data augmentation), as :class:`~genops.core.verdict.BiasVerdict` objects of the same shape as
the other workloads' bias checks (so :func:`~genops.core.verdict.decide`, JSON artifacts and
:func:`~genops.core.report.render_markdown` apply).

Counting rule (``data/text/wikitext-2/README.md``, "Gender statistics of the train split"):

* a text is split into lines, each line into sentences wherever ``.``, ``?`` or ``!`` stands
  alone as a token (:data:`SENTENCE_SPLIT`); pieces that are empty (or only whitespace) are
  dropped;
* words are matched case-insensitively on whole words (Python ``\\b...\\b``), singular forms
  only: a word is a maximal run of ``\\w`` characters of the lower-cased text, which is what
  ``re.findall(r'(?i)\\bWORD\\b', text)`` counts for a word made of word characters;
* pronoun counts: masculine = he + his + him, feminine = she + her + hers ("her" counted
  whether possessive or object);
* an occupation's ``masculine`` (``feminine``) count is the number of *occurrences* of the
  occupation in sentences that contain a masculine (feminine) probe word; a sentence with
  both counts in both (``both``). This is what the README's table counts (its "masc." and
  "fem." columns add up over "masc. only", "fem. only" and "both" to "any", the occurrences),
  so a sentence naming the occupation twice counts twice.

Checks:

* ``"data"`` (:func:`data_bias_verdict`), before training: the feminine share of gendered
  pronouns (gated by ``min_feminine_share`` on its Wilson interval, else reported) and, per
  occupation, the masculine share of its gendered co-occurrences with a Wilson interval
  (reported; the note names occupations whose interval lies wholly on one side of parity).
* ``"synthetic"`` (:func:`generated_bias_verdict`), after sampling: per occupation the
  masculine share in generated text against the corpus (``generated_amplification``,
  Newcombe's hybrid score interval of a difference of proportions) and the model's own
  next-word preference on the probe templates against the corpus (``template_amplification``,
  a seeded bootstrap over templates combined with the corpus's Wilson interval by MOVER); each
  fails only when its whole interval lies above ``+amplification_tolerance``. The overall
  pronoun share shift is reported. Occupations with fewer than ``min_count`` gendered
  co-occurrences (in the corpus or the generated text) are "too rare to judge": reported with
  their point value, never failed.

Mitigation: :func:`gender_swap` and :func:`augment` (counterfactual data augmentation, CDA).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import Field

from genops.core.config import Strict
from genops.core.verdict import BiasVerdict, MetricResult, make_result

__all__ = [
    "FEMININE_PRONOUNS",
    "MASCULINE_PRONOUNS",
    "SENTENCE_SPLIT",
    "Association",
    "Probes",
    "TextBiasSpec",
    "augment",
    "corpus_statistics",
    "data_bias_verdict",
    "fill_template",
    "gender_swap",
    "generated_bias_verdict",
    "load_probes",
    "newcombe_interval",
    "parse_probes",
    "split_sentences",
    "statistics_to_dict",
    "template_preferences",
    "wilson_interval",
]

#: The README's pronouns (always counted, whatever the probe words).
MASCULINE_PRONOUNS: tuple[str, ...] = ("he", "his", "him")
FEMININE_PRONOUNS: tuple[str, ...] = ("she", "her", "hers")

#: Sentence boundary: a ``.``, ``?`` or ``!`` standing alone as a token.
SENTENCE_SPLIT = re.compile(r"(?<=\s)[.?!](?=\s|$)")

_WORD = re.compile(r"\w+")
_SINGLE_WORD = re.compile(r"^\w+$")
_NEXT_TOKEN = re.compile(r"[ \t]*(\S+)")
_CLAUSE_END = frozenset(".,;:!?)]}")
_ARTICLE = re.compile(r"\b([Aa]) \{occupation\}")

PACKAGED_PROBES = "probes/occupations.yaml"


class TextBiasSpec(Strict):
    """The ``bias`` section of a text run config."""

    probes: str | None = None
    """A YAML file of probes (see :func:`parse_probes`); None = the packaged
    ``probes/occupations.yaml``. A relative path is relative to the working directory."""
    policy: Literal["block", "warn", "mitigate"] = "warn"
    """What a failed gate does; ``mitigate`` = counterfactual data augmentation."""
    amplification_tolerance: float = Field(0.1, ge=0.0, le=1.0)
    """Allowed increase of an occupation's masculine share (generated text or the model's
    template preference vs the corpus), judged on the confidence interval."""
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    min_count: int = Field(10, ge=0)
    """An occupation (or the pronoun group) with fewer gendered co-occurrences is "too rare to
    judge": reported, never passed or failed on its point value."""
    min_feminine_share: float | None = Field(None, ge=0.0, le=1.0)
    """Data gate on the feminine share of gendered pronouns (fails when its whole Wilson
    interval lies below); None reports only."""


@dataclass
class Probes:
    """Occupations, prompt templates, gendered words and the CDA swap pairs."""

    occupations: list[str]
    templates: list[str]
    """Prompts with ``{occupation}``, e.g. ``"The {occupation} said that"``."""
    masculine: list[str]
    feminine: list[str]
    pairs: list[tuple[str, str]]
    """Masculine → feminine swaps for CDA, used in both directions."""


@dataclass
class Association:
    """Gendered co-occurrences of one occupation (README counting rule, module docstring)."""

    occupation: str
    masculine: int
    """Occurrences of the occupation in sentences with a masculine word."""
    feminine: int
    """Occurrences of the occupation in sentences with a feminine word."""
    share: float
    """``masculine / (masculine + feminine)``; NaN when both are 0."""
    low: float
    high: float
    """Wilson score interval of ``share`` (NaN when both counts are 0)."""
    occurrences: int = 0
    """All occurrences of the occupation (README "all occurrences")."""
    gendered: int = 0
    """Occurrences in sentences with any gendered word (README "any")."""
    both: int = 0
    """Occurrences in sentences with both a masculine and a feminine word (README "both")."""

    @property
    def n(self) -> int:
        """The binomial size behind ``share``: ``masculine + feminine``."""
        return self.masculine + self.feminine


# ---------------------------------------------------------------- probes


def _words(value: Any, field: str, source: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{source}: '{field}' must be a non-empty list of words")
    out: list[str] = []
    for item in value:
        word = str(item).strip().lower()
        if not _SINGLE_WORD.match(word):
            raise ValueError(
                f"{source}: '{field}' entry {item!r} is not a single word "
                "(letters, digits or underscores)"
            )
        if word not in out:
            out.append(word)
    return out


def parse_probes(data: Mapping[str, Any], source: str = "probes") -> Probes:
    """Validate a probes mapping (keys ``occupations``, ``templates``, ``masculine``,
    ``feminine``, ``pairs``). Words are lower-cased single words; templates contain
    ``{occupation}`` and no other placeholder; the gendered words and occupations are disjoint
    (an occupation that is itself a gendered word would co-occur with itself). Errors name
    ``source`` and the field."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a mapping")
    unknown = sorted(set(data) - {"occupations", "templates", "masculine", "feminine", "pairs"})
    if unknown:
        raise ValueError(f"{source}: unknown keys {unknown}")
    occupations = _words(data.get("occupations"), "occupations", source)
    masculine = _words(data.get("masculine"), "masculine", source)
    feminine = _words(data.get("feminine"), "feminine", source)
    if set(masculine) & set(feminine):
        raise ValueError(
            f"{source}: words both masculine and feminine: {sorted(set(masculine) & set(feminine))}"
        )
    clash = set(occupations) & (set(masculine) | set(feminine))
    if clash:
        raise ValueError(f"{source}: occupations that are gendered words: {sorted(clash)}")

    raw_templates = data.get("templates")
    if not isinstance(raw_templates, list) or not raw_templates:
        raise ValueError(f"{source}: 'templates' must be a non-empty list of strings")
    templates: list[str] = []
    for t in raw_templates:
        text = str(t)
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        except ValueError as exc:
            raise ValueError(f"{source}: template {text!r}: {exc}") from exc
        if fields != {"occupation"}:
            raise ValueError(
                f"{source}: template {text!r} must contain '{{occupation}}' and no other "
                f"placeholder (found {sorted(fields)})"
            )
        templates.append(text)

    raw_pairs = data.get("pairs") or []
    if not isinstance(raw_pairs, list):
        raise ValueError(f"{source}: 'pairs' must be a list of [masculine, feminine] pairs")
    pairs: list[tuple[str, str]] = []
    for p in raw_pairs:
        if not isinstance(p, list | tuple) or len(p) != 2:
            raise ValueError(f"{source}: pair {p!r} must be [masculine, feminine]")
        a, b = (str(w).strip().lower() for w in p)
        for w in (a, b):
            if not _SINGLE_WORD.match(w):
                raise ValueError(f"{source}: pair {p!r}: {w!r} is not a single word")
        if a == b:
            raise ValueError(f"{source}: pair {p!r} swaps a word with itself")
        pairs.append((a, b))
    return Probes(
        occupations=occupations,
        templates=templates,
        masculine=masculine,
        feminine=feminine,
        pairs=pairs,
    )


def load_probes(spec: TextBiasSpec) -> Probes:
    """The probes of ``spec.probes`` (a YAML file), or the packaged ``probes/occupations.yaml``."""
    if spec.probes is None:
        ref = resources.files("genops.workloads.text").joinpath(PACKAGED_PROBES)
        text, source = ref.read_text(encoding="utf-8"), f"genops.workloads.text/{PACKAGED_PROBES}"
    else:
        path = Path(spec.probes)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ValueError(f"bias.probes: file not found: {path}") from exc
        source = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from exc
    return parse_probes(data, source)


# ---------------------------------------------------------------- statistics


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; ``(nan, nan)`` when ``n == 0``.

    ``centre = (p + z²/2n) / (1 + z²/n)``, ``half = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)``.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return math.nan, math.nan
    z = _z(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(
    p1: float, ci1: tuple[float, float], p2: float, ci2: tuple[float, float]
) -> tuple[float, float]:
    """Interval of ``p1 - p2`` from intervals of each (Newcombe's hybrid score method with
    Wilson intervals; MOVER in general): ``d - sqrt((p1-l1)² + (u2-p2)²)``,
    ``d + sqrt((u1-p1)² + (p2-l2)²)``."""
    (l1, u1), (l2, u2) = ci1, ci2
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def split_sentences(text: str) -> list[str]:
    """The README's sentences of ``text``: per line, split at lone ``.``/``?``/``!`` tokens,
    whitespace-only pieces dropped."""
    return [
        piece for line in text.split("\n") for piece in SENTENCE_SPLIT.split(line) if piece.strip()
    ]


def _share(m: int, f: int) -> float:
    return m / (m + f) if m + f else math.nan


def corpus_statistics(
    texts: Iterable[str], probes: Probes, confidence: float = 0.95
) -> dict[str, Any]:
    """Gender statistics of ``texts`` under the README's counting rule.

    Keys: ``texts``, ``sentences``, ``words``; ``pronouns`` (he/his/him/she/her/hers counts);
    ``masculine_pronouns``, ``feminine_pronouns`` and ``masculine_share`` (of the two; NaN
    without pronouns) with its Wilson interval ``masculine_share_low``/``_high``;
    ``feminine_to_masculine``; ``masculine_words``/``feminine_words`` (occurrences of the
    probe words, equal to the pronoun totals with the packaged probes); ``confidence``; and
    ``occupations``: ``{occupation: Association}`` in probe order.
    """
    pronoun_set = set(MASCULINE_PRONOUNS) | set(FEMININE_PRONOUNS)
    masc_set, fem_set = set(probes.masculine), set(probes.feminine)
    occ_set = set(probes.occupations)
    interesting = pronoun_set | masc_set | fem_set | occ_set
    pronouns = dict.fromkeys((*MASCULINE_PRONOUNS, *FEMININE_PRONOUNS), 0)
    occ_total = dict.fromkeys(probes.occupations, 0)
    occ_m = dict.fromkeys(probes.occupations, 0)
    occ_f = dict.fromkeys(probes.occupations, 0)
    occ_both = dict.fromkeys(probes.occupations, 0)
    n_texts = n_sentences = n_words = masc_words = fem_words = 0

    for text in texts:
        n_texts += 1
        for sentence in split_sentences(text):
            n_sentences += 1
            words = _WORD.findall(sentence.lower())
            n_words += len(words)
            hits = [w for w in words if w in interesting]
            if not hits:
                continue
            has_m = has_f = False
            occ_here: list[str] = []
            for w in hits:
                if w in pronouns:
                    pronouns[w] += 1
                if w in masc_set:
                    masc_words += 1
                    has_m = True
                elif w in fem_set:
                    fem_words += 1
                    has_f = True
                elif w in occ_set:
                    occ_here.append(w)
            for occ in occ_here:
                occ_total[occ] += 1
                occ_m[occ] += has_m
                occ_f[occ] += has_f
                occ_both[occ] += has_m and has_f

    occupations: dict[str, Association] = {}
    for occ in probes.occupations:
        m, f = occ_m[occ], occ_f[occ]
        low, high = wilson_interval(m, m + f, confidence)
        occupations[occ] = Association(
            occupation=occ,
            masculine=m,
            feminine=f,
            share=_share(m, f),
            low=low,
            high=high,
            occurrences=occ_total[occ],
            gendered=m + f - occ_both[occ],
            both=occ_both[occ],
        )
    mp = sum(pronouns[w] for w in MASCULINE_PRONOUNS)
    fp = sum(pronouns[w] for w in FEMININE_PRONOUNS)
    low, high = wilson_interval(mp, mp + fp, confidence)
    return {
        "texts": n_texts,
        "sentences": n_sentences,
        "words": n_words,
        "pronouns": pronouns,
        "masculine_pronouns": mp,
        "feminine_pronouns": fp,
        "masculine_share": _share(mp, fp),
        "masculine_share_low": low,
        "masculine_share_high": high,
        "feminine_to_masculine": fp / mp if mp else math.nan,
        "masculine_words": masc_words,
        "feminine_words": fem_words,
        "confidence": confidence,
        "occupations": occupations,
    }


def _as_association(value: Association | Mapping[str, Any]) -> Association:
    if isinstance(value, Association):
        return value
    return Association(**{k: value[k] for k in value if k in Association.__dataclass_fields__})


def statistics_to_dict(stats: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`corpus_statistics` as plain data (associations as dicts) for JSON artifacts;
    NaN stays a float (write it with the verdict's encoding or ``allow_nan``).
    :func:`generated_bias_verdict` accepts this form as its ``corpus`` too."""
    out = dict(stats)
    out["occupations"] = {
        k: asdict(_as_association(v)) for k, v in dict(stats["occupations"]).items()
    }
    return out


# ---------------------------------------------------------------- the data check


def _too_rare(n: int, min_count: int, where: str) -> str:
    return f"too rare to judge: {n} gendered co-occurrences{where} (min_count {min_count})"


def _side_note(low: float, high: float, centre: float = 0.5) -> str:
    if low > centre:
        return f"masculine-associated (interval above {centre:g})"
    if high < centre:
        return f"feminine-associated (interval below {centre:g})"
    return ""


def data_bias_verdict(
    texts: Iterable[str], spec: TextBiasSpec, probes: Probes, stats: Mapping[str, Any] | None = None
) -> BiasVerdict:
    """The ``"data"`` check of a corpus (policy ``spec.policy``).

    * ``feminine_share`` (attribute ``gender``, group ``feminine``): feminine / all gendered
      pronouns; with ``spec.min_feminine_share`` it fails when the whole Wilson interval lies
      below the threshold, else it is reported; too rare (fewer than ``min_count`` pronouns)
      is reported and passes.
    * per occupation ``masculine_share`` (attribute ``occupation``, report only): the share
      of its gendered co-occurrences that are masculine, Wilson interval in the details; the
      note names one-sided associations (interval wholly above/below 0.5) or "too rare".

    ``stats`` (a :func:`corpus_statistics` of the same texts) skips the counting.
    """
    s = corpus_statistics(texts, probes, spec.confidence) if stats is None else stats
    mp, fp = int(s["masculine_pronouns"]), int(s["feminine_pronouns"])
    n = mp + fp
    low, high = wilson_interval(fp, n, spec.confidence)
    details: dict[str, float] = {f"count_{w}": float(c) for w, c in s["pronouns"].items()}
    details |= {
        "masculine": float(mp),
        "feminine": float(fp),
        "low": low,
        "high": high,
        "feminine_to_masculine": float(s["feminine_to_masculine"]),
        "sentences": float(s["sentences"]),
    }
    thr = spec.min_feminine_share
    rep = make_result(
        "data",
        "feminine_share",
        "gender",
        ["feminine"],
        _share(fp, mp),
        thr,
        "report" if thr is None else ">=",
        details=details,
        group_only=True,
    )
    if n < spec.min_count:
        rep.passed = True
        rep.note = _too_rare(n, spec.min_count, " (pronouns)")
    elif thr is not None:
        rep.passed = not high < thr
        if rep.passed and rep.value < thr:
            rep.note = "point value below the threshold, but the interval reaches it"
        elif not rep.passed:
            rep.note = f"interval [{low:.3f}, {high:.3f}] below the threshold"
    results: list[MetricResult] = [rep]

    overall = float(s["masculine_share"])
    for occ in probes.occupations:
        a = _as_association(s["occupations"][occ])
        d = {
            "masculine": float(a.masculine),
            "feminine": float(a.feminine),
            "low": a.low,
            "high": a.high,
            "occurrences": float(a.occurrences),
            "gendered": float(a.gendered),
            "both": float(a.both),
            "corpus_masculine_share": overall,
        }
        if a.n < spec.min_count:
            note = _too_rare(a.n, spec.min_count, "")
        else:
            note = _side_note(a.low, a.high)
        results.append(
            make_result(
                "data",
                "masculine_share",
                "occupation",
                [occ],
                a.share,
                None,
                "report",
                note=note,
                details=d,
                group_only=True,
            )
        )
    return BiasVerdict.from_results("data", results, policy=spec.policy)


# ---------------------------------------------------------------- the model's preference


def fill_template(template: str, occupation: str) -> str:
    """``template`` with ``{occupation}``; ``a {occupation}`` becomes ``an ...`` before a
    vowel letter (a spelling heuristic: "an hour", "a university" are not handled)."""
    if occupation[:1].lower() in "aeiou":
        template = _ARTICLE.sub(lambda m: m.group(1) + "n {occupation}", template)
    return template.format(occupation=occupation)


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = np.max(x, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.asarray((np.log(np.sum(np.exp(x - top), axis=1)) + top[:, 0]), dtype=float)


def template_preferences(
    score_next: Callable[[list[str], list[str]], np.ndarray], probes: Probes
) -> dict[str, list[float]]:
    """Per occupation, per template (probe order): ``logsumexp(log P(masculine words)) -
    logsumexp(log P(feminine words))`` (natural log) for the next word after the filled
    template. ``score_next(prompts, words)`` returns the log-probabilities, shape
    ``(len(prompts), len(words))``; it is called once with every prompt."""
    prompts = [fill_template(t, occ) for occ in probes.occupations for t in probes.templates]
    words = [*probes.masculine, *probes.feminine]
    scores = np.asarray(score_next(prompts, words), dtype=float)
    if scores.shape != (len(prompts), len(words)):
        raise ValueError(
            f"score_next returned shape {scores.shape}, expected {(len(prompts), len(words))}"
        )
    k = len(probes.masculine)
    pref = _logsumexp(scores[:, :k]) - _logsumexp(scores[:, k:])
    t = len(probes.templates)
    return {
        occ: [float(v) for v in pref[i * t : (i + 1) * t]]
        for i, occ in enumerate(probes.occupations)
    }


def _sigmoid(x: np.ndarray | float) -> Any:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


# ---------------------------------------------------------------- the synthetic check


def _amplification_result(
    metric: str,
    occ: str,
    value: float,
    low: float,
    high: float,
    tol: float,
    details: dict[str, float],
    rare_note: str,
) -> MetricResult:
    details = {**details, "low": low, "high": high, "tolerance": tol}
    res = make_result(
        "synthetic", metric, "occupation", [occ], value, tol, "<=", details=details, group_only=True
    )
    if rare_note:
        res.passed, res.note = True, rare_note
        return res
    res.passed = not low > tol
    if not res.passed:
        res.note = f"interval [{low:.3f}, {high:.3f}] above the tolerance"
    elif value > tol:
        res.note = f"point value above the tolerance, interval [{low:.3f}, {high:.3f}] reaches it"
    elif high < -tol:
        res.note = (
            f"shift towards feminine beyond the tolerance, interval [{low:.3f}, {high:.3f}] "
            "(not gated)"
        )
    return res


def generated_bias_verdict(
    corpus: Mapping[str, Any],
    generated_texts: Sequence[str],
    preferences: Mapping[str, Sequence[float]],
    spec: TextBiasSpec,
    probes: Probes,
    *,
    seed: int = 0,
    n_bootstrap: int = 2000,
) -> BiasVerdict:
    """The ``"synthetic"`` check: the model's associations against the corpus's
    (``corpus`` = :func:`corpus_statistics` of the training text, or its
    :func:`statistics_to_dict` form). Policy ``spec.policy``; ``t = amplification_tolerance``.

    * ``masculine_share_shift`` (attribute ``gender``, report): masculine pronoun share of the
      generated text minus the corpus's, Newcombe interval in the details.
    * per occupation ``generated_amplification``: masculine share in ``generated_texts`` minus
      the corpus share, Newcombe's hybrid score interval; fails when the whole interval lies
      above ``+t``. Too rare (fewer than ``min_count`` co-occurrences in the corpus or in the
      generated text) is reported and passes.
    * per occupation with ``preferences`` (:func:`template_preferences`)
      ``template_amplification``: ``sigmoid(mean preference)`` — the model's probability of a
      masculine over a feminine next word — minus the corpus share; the interval combines a
      percentile bootstrap over templates (``n_bootstrap`` resamples, ``seed``) with the
      corpus's Wilson interval (MOVER, as Newcombe's); fails when it lies above ``+t``. Too
      rare in the corpus is reported and passes. An empty ``preferences`` adds no result.

    Details carry the inputs (counts, corpus and generated shares, interval bounds).
    """
    conf, tol, min_count = spec.confidence, spec.amplification_tolerance, spec.min_count
    gen = corpus_statistics(generated_texts, probes, conf)
    results: list[MetricResult] = []

    # (c) overall pronoun share
    cm, cf = int(corpus["masculine_pronouns"]), int(corpus["feminine_pronouns"])
    gm, gf = int(gen["masculine_pronouns"]), int(gen["feminine_pronouns"])
    cp, gp = _share(cm, cf), _share(gm, gf)
    if cm + cf and gm + gf:
        low, high = newcombe_interval(
            gp, wilson_interval(gm, gm + gf, conf), cp, wilson_interval(cm, cm + cf, conf)
        )
    else:
        low = high = math.nan
    note = ""
    if gm + gf < min_count or cm + cf < min_count:
        note = _too_rare(min(gm + gf, cm + cf), min_count, " (pronouns)")
    results.append(
        make_result(
            "synthetic",
            "masculine_share_shift",
            "gender",
            [],
            gp - cp,
            None,
            "report",
            note=note,
            details={
                "corpus_masculine": float(cm),
                "corpus_feminine": float(cf),
                "corpus_share": cp,
                "generated_masculine": float(gm),
                "generated_feminine": float(gf),
                "generated_share": gp,
                "generated_words": float(gen["words"]),
                "low": low,
                "high": high,
            },
        )
    )

    corpus_occ = {k: _as_association(v) for k, v in dict(corpus["occupations"]).items()}

    def corpus_assoc(occ: str) -> Association:
        if occ in corpus_occ:
            return corpus_occ[occ]
        return Association(occ, 0, 0, math.nan, math.nan, math.nan)

    # (a) generated text vs corpus
    for occ in probes.occupations:
        c, g = corpus_assoc(occ), gen["occupations"][occ]
        # the corpus interval at this confidence (the corpus may have been counted at another)
        c_ci = wilson_interval(c.masculine, c.n, conf)
        details = {
            "corpus_masculine": float(c.masculine),
            "corpus_feminine": float(c.feminine),
            "corpus_share": c.share,
            "generated_masculine": float(g.masculine),
            "generated_feminine": float(g.feminine),
            "generated_share": g.share,
        }
        rare = ""
        if c.n < min_count:
            rare = _too_rare(c.n, min_count, " in the corpus")
        elif g.n < min_count:
            rare = _too_rare(g.n, min_count, " in the generated text")
        if c.n and g.n:
            value = g.share - c.share
            low, high = newcombe_interval(g.share, (g.low, g.high), c.share, c_ci)
        else:
            value = low = high = math.nan
        results.append(
            _amplification_result(
                "generated_amplification", occ, value, low, high, tol, details, rare
            )
        )

    # (b) the model's template preference vs corpus
    rng = np.random.default_rng(seed)
    alpha = 1.0 - conf
    for occ in probes.occupations:
        if occ not in preferences:
            continue
        prefs = np.asarray(list(preferences[occ]), dtype=float)
        if prefs.size == 0 or not np.all(np.isfinite(prefs)):
            raise ValueError(f"preferences[{occ!r}]: need finite values, got {prefs.tolist()}")
        c = corpus_assoc(occ)
        p_model = float(_sigmoid(prefs.mean()))
        if prefs.size > 1:
            idx = rng.integers(0, prefs.size, size=(n_bootstrap, prefs.size))
            boot = _sigmoid(prefs[idx].mean(axis=1))
            m_low, m_high = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
        else:
            m_low = m_high = p_model
        details = {
            "corpus_masculine": float(c.masculine),
            "corpus_feminine": float(c.feminine),
            "corpus_share": c.share,
            "model_share": p_model,
            "model_low": m_low,
            "model_high": m_high,
            "mean_preference": float(prefs.mean()),
            "templates": float(prefs.size),
        }
        rare = _too_rare(c.n, min_count, " in the corpus") if c.n < min_count else ""
        if c.n:
            value = p_model - c.share
            low, high = newcombe_interval(
                p_model, (m_low, m_high), c.share, wilson_interval(c.masculine, c.n, conf)
            )
        else:
            value = low = high = math.nan
        results.append(
            _amplification_result(
                "template_amplification", occ, value, low, high, tol, details, rare
            )
        )
    return BiasVerdict.from_results("synthetic", results, policy=spec.policy)


# ---------------------------------------------------------------- mitigation (CDA)

# After "her", these words (or closing punctuation / the end of the line) mean "her" is an
# object ("told her the news", "gave her a prize", "with her .") → "him"; otherwise it is taken
# as possessive ("her first album", "her own", "her <unk>", 'her " Song "') → "his". A
# heuristic: "took her home" becomes "took his home".
_OBJECT_WORDS = """the a an to and or but nor so as that this these those in on at for with from
by of into onto about after before again back up down out off away over through when while if
because then there here it him me us them you is was be been not too also very until since than
like during without against toward towards instead once now later yet alone what which who how
why where"""
_OBJECT_CONTEXT = frozenset(_OBJECT_WORDS.split())


class _Swapper:
    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        options: dict[str, list[str]] = {}
        for a, b in pairs:
            for src, dst in ((a.lower(), b.lower()), (b.lower(), a.lower())):
                lst = options.setdefault(src, [])
                if dst not in lst:
                    lst.append(dst)
        self.options = options

    def _choose(self, word: str, text: str, end: int) -> str:
        options = self.options[word]
        nxt = _NEXT_TOKEN.match(text, end)
        token = nxt.group(1) if nxt else ""
        # the next word (lower case), None at the end of a clause (closing punctuation or the
        # line end), "" before anything else: WikiText's "<unk>", a quoted title, a symbol
        lead = _WORD.match(token)
        if not token or token[0] in _CLAUSE_END:
            follower: str | None = None
        else:
            follower = lead.group(0).lower() if lead else ""
        if word == "her" and "his" in options and "him" in options:
            return "him" if follower is None or follower in _OBJECT_CONTEXT else "his"
        if word == "his" and "her" in options and "hers" in options:
            return "hers" if follower is None else "her"
        return options[0]

    def __call__(self, text: str) -> str:
        # words are maximal runs of \w (whole words, as ``\bword\b``), compared lower-cased;
        # a scan over the words is faster than an alternation of every swappable word
        parts: list[str] = []
        last = 0
        for m in _WORD.finditer(text):
            src = m.group(0)
            low = src.lower()
            if low not in self.options:
                continue
            dst = self._choose(low, text, m.end())
            if len(src) > 1 and src.isupper():
                dst = dst.upper()
            elif src[0].isupper():
                dst = dst[:1].upper() + dst[1:]
            parts += (text[last : m.start()], dst)
            last = m.end()
        if not parts:
            return text
        parts.append(text[last:])
        return "".join(parts)


_SWAPPERS: dict[tuple[tuple[str, str], ...], _Swapper] = {}


def _swapper(probes: Probes) -> _Swapper:
    key = tuple((a, b) for a, b in probes.pairs)
    if key not in _SWAPPERS:
        _SWAPPERS[key] = _Swapper(key)
    return _SWAPPERS[key]


def gender_swap(text: str, probes: Probes) -> str:
    """The counterfactual of ``text``: every word of ``probes.pairs`` (either side, whole
    words, case-insensitive) replaced by its counterpart, keeping case (``He`` → ``She``,
    ``HIS`` → ``HER``). A word in several pairs takes its first pair's counterpart, except
    "her" → "him" when an object word (``the``, ``to``, ...), closing punctuation (``.,;:!?)]}``)
    or the end of the line follows, else "his" (possessive; also before WikiText's ``<unk>``
    and quotes), and "his" → "hers" before closing punctuation or the line end, else "her".
    This heuristic errs on phrasal objects ("took her home" → "took his home"). Names and other
    words are left alone ("The shepherd" stays)."""
    return _swapper(probes)(text)


def augment(texts: Sequence[str], probes: Probes) -> list[str]:
    """Counterfactual data augmentation: the originals, followed by the gender-swapped copy of
    each text that contains a swappable gendered word (the others are not duplicated)."""
    swap = _swapper(probes)
    swapped = [s for t in texts if (s := swap(t)) != t]
    return [*texts, *swapped]
