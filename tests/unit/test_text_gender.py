"""genops.workloads.text.gender: corpus statistics (the WikiText-2 README's table), the data and
synthetic gender-association checks, template preferences and counterfactual augmentation."""

from __future__ import annotations

import gzip
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from genops.core.report import render_markdown
from genops.core.verdict import BiasVerdict, decide, failure_message
from genops.workloads.text.gender import (
    Probes,
    TextBiasSpec,
    augment,
    corpus_statistics,
    data_bias_verdict,
    fill_template,
    gender_swap,
    generated_bias_verdict,
    load_probes,
    newcombe_interval,
    split_sentences,
    statistics_to_dict,
    template_preferences,
    wilson_interval,
)

REPO = Path(__file__).resolve().parents[2]
WIKITEXT_TRAIN = REPO / "data" / "text" / "wikitext-2" / "train.txt.gz"

README_OCCUPATIONS = [
    "doctor",
    "nurse",
    "engineer",
    "teacher",
    "soldier",
    "actress",
    "actor",
    "scientist",
    "singer",
    "politician",
]


@pytest.fixture(scope="module")
def probes() -> Probes:
    return load_probes(TextBiasSpec())


def small_probes(occupations: list[str] | None = None) -> Probes:
    return Probes(
        occupations=occupations or ["nurse", "engineer", "doctor", "pilot"],
        templates=["The {occupation} said that", "My friend is a {occupation} and"],
        masculine=["he", "his", "him"],
        feminine=["she", "her", "hers"],
        pairs=[("he", "she"), ("his", "her"), ("him", "her"), ("his", "hers"), ("man", "woman")],
    )


def roundtrip(verdict: BiasVerdict) -> None:
    """Every verdict serialises to strict JSON, reads back, and renders as Markdown."""
    back = BiasVerdict.from_json(verdict.to_json())
    assert back.passed == verdict.passed
    assert [r.describe() for r in back.results] == [r.describe() for r in verdict.results]
    assert render_markdown(verdict).startswith("# Bias report")


# ---------------------------------------------------------------- the README's table


@pytest.mark.skipif(not WIKITEXT_TRAIN.exists(), reason="WikiText-2 train split not present")
def test_wikitext_train_reproduces_readme_table(probes: Probes) -> None:
    with gzip.open(WIKITEXT_TRAIN, "rt", encoding="utf-8") as fh:
        text = fh.read()
    stats = corpus_statistics(text.split("\n"), probes)

    assert stats["pronouns"] == {
        "he": 8706,
        "his": 9019,
        "him": 1848,
        "she": 2884,
        "her": 3670,
        "hers": 8,
    }
    assert stats["masculine_pronouns"] == 19_573
    assert stats["feminine_pronouns"] == 6_562
    assert stats["sentences"] == 83_529
    assert stats["feminine_to_masculine"] == pytest.approx(0.335, abs=5e-4)
    assert stats["masculine_share"] == pytest.approx(0.749, abs=5e-4)

    # word | all occurrences | any | masc. | fem. | masc. only | fem. only | both
    readme = {
        "doctor": (47, 22, 20, 2, 20, 2, 0),
        "nurse": (53, 12, 6, 6, 6, 6, 0),
        "engineer": (135, 12, 12, 1, 11, 0, 1),
        "teacher": (76, 44, 36, 13, 31, 8, 5),
        "soldier": (42, 16, 16, 1, 15, 0, 1),
        "actress": (123, 52, 6, 47, 5, 46, 1),
        "actor": (176, 70, 58, 12, 58, 12, 0),
        "scientist": (19, 8, 7, 1, 7, 1, 0),
        "singer": (162, 70, 34, 40, 30, 36, 4),
        "politician": (22, 6, 6, 1, 5, 0, 1),
    }
    for occ, row in readme.items():
        a = stats["occupations"][occ]
        got = (
            a.occurrences,
            a.gendered,
            a.masculine,
            a.feminine,
            a.masculine - a.both,
            a.feminine - a.both,
            a.both,
        )
        assert got == row, occ
    actress = stats["occupations"]["actress"]
    assert actress.share == pytest.approx(6 / 53)
    assert actress.high < 0.5  # feminine-associated, as the table shows

    verdict = data_bias_verdict([], TextBiasSpec(), probes, stats=stats)
    assert verdict.passed
    by_occ = {r.groups[0]: r for r in verdict.results if r.attribute == "occupation"}
    assert "masculine-associated" in by_occ["doctor"].note
    assert "feminine-associated" in by_occ["actress"].note
    assert "too rare to judge" in by_occ["politician"].note  # 7 co-occurrences < 10
    roundtrip(verdict)


def test_sentence_split_and_whole_words(probes: Probes) -> None:
    assert split_sentences("He ran . She sat ? \n  \n = Title = \n3.5 ok !") == [
        "He ran ",
        " She sat ",
        " = Title = ",
        "3.5 ok ",
    ]
    stats = corpus_statistics(["The shepherd saw THE nurses ; HE left . Hershey her ."], probes)
    assert stats["pronouns"]["he"] == 1  # not in "shepherd", "THE"
    assert stats["pronouns"]["her"] == 1  # not in "Hershey"
    assert stats["occupations"]["nurse"].occurrences == 0  # singular only


# ---------------------------------------------------------------- intervals


def test_wilson_interval_by_hand() -> None:
    # 8 of 10 at 95 %: z = 1.959964, z²/n = 0.384146
    # centre = (0.8 + 0.192073) / 1.384146 = 0.716740
    # half   = 1.959964 / 1.384146 * sqrt(0.016 + 0.009604) = 0.226578
    low, high = wilson_interval(8, 10, 0.95)
    assert low == pytest.approx(0.490162, abs=1e-5)
    assert high == pytest.approx(0.943318, abs=1e-5)
    # all successes: upper bound 1, lower bound n / (n + z²)
    low, high = wilson_interval(30, 30, 0.95)
    assert high == pytest.approx(1.0)
    assert low == pytest.approx(30 / (30 + 1.959964**2), abs=1e-6)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_newcombe_interval_matches_the_paper() -> None:
    # Newcombe (1998), method 10, example 56/70 vs 48/80: 0.2000 (0.0524, 0.3339)
    p1, p2 = 56 / 70, 48 / 80
    low, high = newcombe_interval(p1, wilson_interval(56, 70), p2, wilson_interval(48, 80))
    assert low == pytest.approx(0.0524, abs=1e-4)
    assert high == pytest.approx(0.3339, abs=1e-4)


# ---------------------------------------------------------------- the data check


def planted_corpus() -> list[str]:
    """ "nurse" always with "he"; "engineer" balanced; "pilot" too rare."""
    texts = ["The nurse said that he was tired . He went home ."] * 30
    texts += ["The engineer said that he was late .", "The engineer said she was early ."] * 15
    texts += ["The pilot said that she would fly ."] * 3
    texts += ["The weather was fine ."] * 10
    return texts


def test_planted_occupation_is_named_by_the_data_check() -> None:
    probes = small_probes()
    spec = TextBiasSpec()
    verdict = data_bias_verdict(planted_corpus(), spec, probes)
    assert verdict.check == "data"
    assert verdict.passed  # per-occupation shares are reported, not gated
    by_occ = {r.groups[0]: r for r in verdict.results if r.attribute == "occupation"}
    nurse = by_occ["nurse"]
    assert nurse.metric == "masculine_share"
    assert nurse.value == 1.0
    assert nurse.details["masculine"] == 30
    assert nurse.details["feminine"] == 0
    assert nurse.details["low"] > 0.85
    assert "masculine-associated" in nurse.note
    assert by_occ["engineer"].value == pytest.approx(0.5)
    assert by_occ["engineer"].note == ""
    assert "too rare to judge" in by_occ["pilot"].note and by_occ["pilot"].passed
    assert math.isnan(by_occ["doctor"].value)
    assert "too rare to judge: 0" in by_occ["doctor"].note
    md = render_markdown(verdict)
    assert "| masculine_share | occupation | nurse | 1.0000 |" in md
    roundtrip(verdict)


def test_feminine_share_gate_uses_the_interval() -> None:
    probes = small_probes()
    # 75 masculine, 18 feminine pronouns: feminine share 0.194, Wilson [0.127, 0.285]
    blocked = data_bias_verdict(
        planted_corpus(), TextBiasSpec(min_feminine_share=0.4, policy="block"), probes
    )
    fem = blocked.results[0]
    assert fem.metric == "feminine_share" and fem.groups == ["feminine"]
    assert fem.value == pytest.approx(18 / 93)
    assert not blocked.passed and decide(blocked) == "stop"
    assert "feminine_share for gender='feminine'" in failure_message(blocked)
    # the point value is below 0.25 but the interval reaches it: passes with a note
    near = data_bias_verdict(planted_corpus(), TextBiasSpec(min_feminine_share=0.25), probes)
    assert near.passed and "interval reaches" in near.results[0].note
    # too few pronouns to judge: reported, passes
    rare = data_bias_verdict(["He said so ."], TextBiasSpec(min_feminine_share=0.4), probes)
    assert rare.passed and "too rare to judge" in rare.results[0].note
    roundtrip(blocked)


# ---------------------------------------------------------------- the synthetic check


def corpus_with(counts: dict[str, tuple[int, int]]) -> list[str]:
    texts: list[str] = []
    for occ, (m, f) in counts.items():
        texts += [f"The {occ} said that he was late ."] * m
        texts += [f"The {occ} said that she was late ."] * f
    return texts


def test_generated_text_amplification_is_judged_on_the_interval() -> None:
    probes = small_probes()
    spec = TextBiasSpec(amplification_tolerance=0.1)
    corpus = corpus_statistics(
        corpus_with({"engineer": (40, 60), "nurse": (40, 60), "doctor": (50, 50), "pilot": (3, 2)}),
        probes,
    )
    # engineer doubles its masculine share (0.4 -> 0.8); nurse moves within the tolerance;
    # doctor moves by 0.15 on 12 generations (point above, interval reaches the tolerance);
    # pilot is too rare in the corpus
    generated = corpus_with(
        {"engineer": (80, 20), "nurse": (45, 55), "doctor": (8, 4), "pilot": (20, 0)}
    )
    verdict = generated_bias_verdict(corpus, generated, {}, spec, probes)
    assert verdict.check == "synthetic"
    assert not verdict.passed
    by_occ = {r.groups[0]: r for r in verdict.results if r.metric == "generated_amplification"}
    eng = by_occ["engineer"]
    assert eng.value == pytest.approx(0.4)
    assert eng.details["corpus_share"] == pytest.approx(0.4)
    assert eng.details["generated_share"] == pytest.approx(0.8)
    assert eng.details["low"] > 0.1 and not eng.passed
    assert by_occ["nurse"].passed and by_occ["nurse"].value == pytest.approx(0.05)
    doc = by_occ["doctor"]
    assert doc.value > 0.1 and doc.passed and "reaches" in doc.note
    assert by_occ["pilot"].passed and "too rare to judge" in by_occ["pilot"].note
    assert [r.groups for r in verdict.failures] == [["engineer"]]
    assert "generated_amplification for occupation='engineer' = 0.400 > 0.100" in (
        failure_message(verdict)
    )
    shift = verdict.results[0]
    assert shift.metric == "masculine_share_shift" and shift.comparison == "report"
    assert shift.details["corpus_share"] == pytest.approx(133 / 305)
    # no template results without preferences
    assert not [r for r in verdict.results if r.metric == "template_amplification"]
    # within the tolerance everywhere: passes; the statistics' dict form works as the corpus
    calm = corpus_with({"engineer": (45, 55), "nurse": (40, 60)})
    ok = generated_bias_verdict(statistics_to_dict(corpus), calm, {}, spec, probes)
    assert ok.passed
    rare = {r.groups[0]: r for r in ok.results if r.metric == "generated_amplification"}
    assert "0 gendered co-occurrences in the generated text" in rare["doctor"].note
    roundtrip(verdict)
    roundtrip(ok)


def fake_score_next(bias: dict[str, float], spread: dict[str, float]) -> Any:
    """A fake model: per occupation, masculine words get log-odds ``bias[occ]`` (plus a
    template-dependent ``spread``) over feminine ones."""
    calls: list[int] = []

    def score_next(prompts: list[str], words: list[str]) -> np.ndarray:
        calls.append(len(prompts))
        out = np.zeros((len(prompts), len(words)))
        for i, prompt in enumerate(prompts):
            occ = next(o for o in bias if o in prompt)
            shift = bias[occ] + spread.get(occ, 0.0) * (1 if i % 2 else -1)
            for j in range(len(words)):
                # within each gender: 0.6, 0.3, 0.1 of the gender's mass
                base = np.log([0.6, 0.3, 0.1][j % 3])
                out[i, j] = base + (shift / 2 if j < 3 else -shift / 2) - 3.0
        return out

    score_next.calls = calls
    return score_next


def test_template_preferences_and_their_gate() -> None:
    probes = small_probes()
    probes.templates = [
        "The {occupation} said that",
        "My friend is a {occupation} and",
        "The {occupation} went home because",
        "The {occupation} was late because",
        "After the meeting the {occupation} told us that",
        "The {occupation} finished the work and then",
    ]
    score = fake_score_next(
        {"engineer": math.log(4.0), "nurse": -1.0, "doctor": math.log(4.0), "pilot": 0.2},
        {"doctor": 3.0},
    )
    prefs = template_preferences(score, probes)
    assert score.calls == [len(probes.occupations) * len(probes.templates)]
    assert list(prefs) == probes.occupations
    assert all(len(v) == len(probes.templates) for v in prefs.values())
    assert prefs["engineer"] == pytest.approx([math.log(4.0)] * 6)
    assert all(p < 0 for p in prefs["nurse"])
    assert all(p > 0 for p in prefs["pilot"])

    spec = TextBiasSpec(amplification_tolerance=0.1)
    corpus = corpus_statistics(
        corpus_with({"engineer": (50, 50), "nurse": (40, 60), "doctor": (50, 50), "pilot": (4, 2)}),
        probes,
    )
    verdict = generated_bias_verdict(corpus, [], prefs, spec, probes, seed=7)
    by_occ = {r.groups[0]: r for r in verdict.results if r.metric == "template_amplification"}
    eng = by_occ["engineer"]
    # sigmoid(log 4) = 0.8 against a corpus share of 0.5; no spread over templates
    assert eng.value == pytest.approx(0.3)
    assert eng.details["model_share"] == pytest.approx(0.8)
    assert eng.details["model_low"] == pytest.approx(0.8)
    assert eng.details["low"] > 0.1 and not eng.passed
    # nurse: the model prefers feminine continuations: negative amplification, passes
    assert by_occ["nurse"].value < 0 and by_occ["nurse"].passed
    # doctor: same mean preference as engineer, but the templates disagree (log-odds
    # log 4 ± 3): the bootstrap interval reaches the tolerance, so the gate does not fire
    doc = by_occ["doctor"]
    assert doc.details["mean_preference"] == pytest.approx(math.log(4.0))
    assert doc.value == pytest.approx(0.3)
    assert doc.details["low"] <= 0.1 and doc.passed and "reaches" in doc.note
    assert by_occ["pilot"].passed and "too rare to judge" in by_occ["pilot"].note
    assert [r.groups[0] for r in verdict.failures] == ["engineer"]
    # generated text is empty: every generated_amplification is too rare and passes
    gen = [r for r in verdict.results if r.metric == "generated_amplification"]
    assert gen and all(r.passed and "too rare" in r.note for r in gen)
    # seeded: the same verdict twice
    again = generated_bias_verdict(corpus, [], prefs, spec, probes, seed=7)
    assert again.to_json() == verdict.to_json()
    roundtrip(verdict)

    with pytest.raises(ValueError, match="shape"):
        template_preferences(lambda p, w: np.zeros((1, 1)), probes)


def test_fill_template_article() -> None:
    assert fill_template("My friend is a {occupation} and", "engineer") == (
        "My friend is an engineer and"
    )
    assert fill_template("My friend is a {occupation} and", "nurse") == "My friend is a nurse and"
    assert fill_template("The {occupation} said that", "actor") == "The actor said that"


# ---------------------------------------------------------------- CDA


def test_gender_swap_keeps_case_and_whole_words(probes: Probes) -> None:
    assert gender_swap("He said his book was hers , and SHE gave her the pen .", probes) == (
        "She said her book was his , and HE gave him the pen ."
    )
    assert gender_swap("The shepherd thanked the man", probes) == ("The shepherd thanked the woman")
    assert gender_swap("Her own album ; he told her .", probes) == "His own album ; she told him ."
    assert gender_swap("The choice was his .", probes) == "The choice was hers ."
    # WikiText: "<unk>" and a quoted title follow a possessive
    assert gender_swap('her <unk> and his " Song "', probes) == 'his <unk> and her " Song "'
    assert gender_swap("gave her a prize ; with her", probes) == "gave him a prize ; with him"
    assert gender_swap("The actress and the King", probes) == "The actor and the Queen"
    assert gender_swap("Hershey , Theodore and Sherlock", probes) == (
        "Hershey , Theodore and Sherlock"
    )
    # involution on unambiguous words
    text = "He met the woman and her brother ."
    assert gender_swap(gender_swap(text, probes), probes) == text


def test_augment_doubles_only_gendered_texts(probes: Probes) -> None:
    texts = ["He ran home .", "The sky is blue .", "She sang .", "The shepherd slept ."]
    out = augment(texts, probes)
    assert out == [*texts, "She ran home .", "He sang ."]
    # the augmented corpus is balanced in pronouns
    stats = corpus_statistics(out, probes)
    assert stats["masculine_pronouns"] == stats["feminine_pronouns"] == 2


def test_augmentation_removes_the_planted_association() -> None:
    probes = small_probes()
    before = corpus_statistics(planted_corpus(), probes)["occupations"]["nurse"]
    after = corpus_statistics(augment(planted_corpus(), probes), probes)["occupations"]["nurse"]
    assert before.share == 1.0
    assert after.share == pytest.approx(0.5)


# ---------------------------------------------------------------- probes and spec


def test_packaged_probes(probes: Probes) -> None:
    assert set(README_OCCUPATIONS) <= set(probes.occupations)
    assert len(probes.occupations) >= 25
    assert len(probes.templates) >= 5
    assert all("{occupation}" in t for t in probes.templates)
    assert probes.masculine == ["he", "his", "him"]
    assert probes.feminine == ["she", "her", "hers"]
    assert ("he", "she") in probes.pairs and ("actor", "actress") in probes.pairs


def test_custom_probes_file_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(
        "occupations: [Baker]\ntemplates: ['The {occupation} said that']\n"
        "masculine: [he]\nfeminine: [she]\npairs: [[he, she]]\n"
    )
    p = load_probes(TextBiasSpec(probes=str(path)))
    assert p.occupations == ["baker"] and p.pairs == [("he", "she")]

    path.write_text(
        "occupations: [baker]\ntemplates: ['The baker said']\nmasculine: [he]\nfeminine: [she]\n"
    )
    with pytest.raises(ValueError, match="occupation"):
        load_probes(TextBiasSpec(probes=str(path)))
    path.write_text(
        "occupations: [king]\ntemplates: ['{occupation}']\nmasculine: [king]\nfeminine: [queen]\n"
    )
    with pytest.raises(ValueError, match="gendered words"):
        load_probes(TextBiasSpec(probes=str(path)))
    path.write_text(
        "occupations: [police officer]\ntemplates: ['{occupation}']\n"
        "masculine: [he]\nfeminine: [she]\n"
    )
    with pytest.raises(ValueError, match="single word"):
        load_probes(TextBiasSpec(probes=str(path)))
    with pytest.raises(ValueError, match="not found"):
        load_probes(TextBiasSpec(probes=str(tmp_path / "missing.yaml")))
    with pytest.raises(ValidationError):
        TextBiasSpec(policy="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        TextBiasSpec(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="confidence"):
        TextBiasSpec(confidence=1.5)
    with pytest.raises(ValidationError, match="min_feminine_share"):
        TextBiasSpec(min_feminine_share=-0.1)
