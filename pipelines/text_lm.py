"""The text-lm pipeline, tracked in MLflow:

prepare (read and split the corpus) -> corpus and gender gate -> tune -> train (tokenizer +
GPT-2-style language model, PII redaction or counterfactual augmentation when the gate asks)
-> evaluate (word-level perplexity fp32/int8, diversity, memorisation, generated-text gender
gate) -> register -> bless -> promote -> deploy -> smoke test (-> rollback).
"""

from typing import Any

from kfp import dsl

from components.text import (
    corpus_check,
    evaluate_language_model,
    prepare_corpus,
    train_language_model,
)
from pipelines.builder import build_pipeline, closing_mlflow_run, release_chain, tune_study
from pipelines.targets import LOCAL, Target

PIPELINE_NAME = "text-lm"


def text_lm(target: Target = LOCAL) -> Any:
    """The pipeline built for ``target`` (local or cluster)."""
    configure_task = target.configure
    tune = tune_study(target)  # built first: a sub-pipeline cannot be traced inside another

    @dsl.pipeline(name=f"{PIPELINE_NAME}-steps")
    def text_lm_steps(
        config: dsl.Input[dsl.Artifact],
        tracking_uri: str,
        pipeline_version: str,
        git_commit: str,
        run_id: str,
    ):
        """The steps, inside an exit handler that always closes the MLflow parent run."""
        with closing_mlflow_run(target, tracking_uri, run_id):
            prep = configure_task(
                prepare_corpus(config=config, tracking_uri=tracking_uri, run_id=run_id)
            )
            check = configure_task(
                corpus_check(
                    config=config,
                    train=prep.outputs["train"],
                    validation=prep.outputs["validation"],
                    test=prep.outputs["test"],
                    tracking_uri=tracking_uri,
                    run_id=run_id,
                )
            )
            # Gate 1: duplicates, personal data (policy block) or gender representation
            # (policy block) -> "stop": nothing is trained.
            with dsl.If(check.outputs["Output"] != "stop", name="corpus-allows-training"):
                best = tune(
                    config=config,
                    train=prep.outputs["train"],
                    validation=prep.outputs["validation"],
                    tracking_uri=tracking_uri,
                    run_id=run_id,
                )
                trained = configure_task(
                    train_language_model(
                        config=config,
                        train=prep.outputs["train"],
                        validation=prep.outputs["validation"],
                        params=best.output,
                        decision=check.outputs["Output"],
                        tracking_uri=tracking_uri,
                        run_id=run_id,
                    ),
                    "gpu",
                )
                evaluated = configure_task(
                    evaluate_language_model(
                        config=config,
                        model=trained.outputs["model"],
                        train=prep.outputs["train"],
                        test=prep.outputs["test"],
                        tracking_uri=tracking_uri,
                        run_id=run_id,
                    ),
                    "gpu",
                )
                # Gate 2: a model that amplifies the corpus's gender associations is not
                # registered.
                with dsl.If(evaluated.outputs["Output"] == "passed", name="generated-passed"):
                    release_chain(
                        target,
                        config=config,
                        trained=trained,
                        evaluated=evaluated,
                        dataset_hash=prep.outputs["dataset_hash"],
                        tracking_uri=tracking_uri,
                        run_id=run_id,
                        pipeline_version=pipeline_version,
                        git_commit=git_commit,
                    )

    return build_pipeline(
        target,
        PIPELINE_NAME,
        (
            "Text generation with a GPT-2-style language model: corpus and gender gates, tune, "
            "train, evaluate (perplexity, memorisation, int8), register, bless, deploy."
        ),
        text_lm_steps,
    )
