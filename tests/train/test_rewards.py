"""Rewards are the evaluator's rules: pure functions, tested without a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlens.errors import ConfigError, UnknownNameError
from medlens.train.rewards import completion_text, make_reward, make_rewards


def msg(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def test_accuracy_reads_answers_as_the_medlens_protocol_does() -> None:
    reward = make_reward("accuracy")
    out = reward(
        [msg("Yes."), msg("no"), msg("maybe"), msg("Left lung"), msg("heart")],
        answers=[["yes"], ["yes"], ["no"], ["left lung"], ["left lung"]],
        kind=["closed", "closed", "closed", "open", "open"],
        candidates=[["yes", "no"]] * 3 + [[], []],
    )
    # "maybe" names neither candidate: unparseable under medlens, so 0, not a coin flip.
    assert out == [1.0, 0.0, 0.0, 1.0, 0.0]


def test_accuracy_open_answers_get_the_protocols_partial_credit() -> None:
    (medlens,) = make_reward("accuracy")(
        [msg("left upper lung")], answers=[["left lung"]], kind=["open"]
    )
    assert medlens == pytest.approx(0.8)  # token F1: precision 2/3, recall 1
    (lmms,) = make_reward("accuracy:protocol=lmms-eval")(
        [msg("left upper lung")], answers=[["left lung"]], kind=["open"]
    )
    assert lmms == 0.0  # lmms-eval's normalised exact match


def test_accuracy_is_none_where_a_row_has_no_gold_answer() -> None:
    out = make_reward("accuracy")(
        [msg("yes"), msg("yes")], answers=[[], ["yes"]], kind=["closed", "closed"]
    )
    assert out == [None, 1.0]


def test_format_presets() -> None:
    think = make_reward("format:preset=med-r1")
    nothink = make_reward("format:preset=med-r1-nothink")
    texts = [
        "<think>the left lung is dark</think> <answer>pneumothorax</answer>",
        "<answer>yes</answer>",
        "yes",
        "<think>unfinished",
        "<answer>yes</answer> trailing words",
    ]
    assert think([msg(t) for t in texts]) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert nothink([msg(t) for t in texts]) == [0.0, 1.0, 0.0, 0.0, 0.0]


def test_iou_reward_applies_to_grounding_rows_only() -> None:
    reward = make_reward("iou")
    out = reward(
        [
            msg('[{"label": "liver", "box_2d": [0, 0, 10, 10]}]'),
            msg('[{"label": "liver", "box_2d": [5, 0, 15, 10]}]'),
            msg("no box here"),
            msg("[0, 0, 10, 10]"),
        ],
        kind=["grounding", "grounding", "grounding", "open"],
        boxes=[[[0, 0, 10, 10]], [[0, 0, 10, 10]], [[0, 0, 10, 10]], []],
    )
    assert out[0] == 1.0
    assert out[1] == pytest.approx(1 / 3)
    assert out[2] == 0.0
    assert out[3] is None


def test_unknown_reward_names_and_bad_parameters_fail_clearly() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'accuracy'"):
        make_reward("acuracy")
    with pytest.raises(UnknownNameError, match="med-r1-nothink"):
        make_reward("format:preset=r1")
    with pytest.raises(UnknownNameError, match="protocol"):
        make_reward("accuracy:protocol=nope")
    with pytest.raises(ConfigError, match="key=value"):
        make_reward("accuracy:medlens")
    with pytest.raises(ConfigError, match="at least one reward"):
        make_rewards([])


def test_completion_text_takes_plain_and_conversational_completions() -> None:
    assert completion_text("yes") == "yes"
    assert (
        completion_text([{"role": "assistant", "content": [{"type": "text", "text": "no"}]}])
        == "no"
    )


def test_batches_are_shuffled_unless_length_grouping_is_asked_for() -> None:
    """Length grouping fed medlens-tiny's first run dozens of same-kind batches in a row and
    it collapsed to one answer distribution; shuffling is the default and goes to the trainer."""
    from medlens.train.run import Hyper, RunContext

    assert Hyper().sampler == "random"
    with pytest.raises(ConfigError, match="--sampler must be one of random, group_by_length"):
        Hyper(sampler="sorted")
    context = RunContext.__new__(RunContext)
    context.output, context.hyper = Path("out"), Hyper(sampler="group_by_length")
    assert context.trainer_args()["train_sampling_strategy"] == "group_by_length"


def test_repeat_takes_whole_counts_for_benchmarks_being_trained_on() -> None:
    from medlens.cli.train import parse_repeat

    names = ("slake", "slake-grounding")
    assert parse_repeat("slake-grounding=2", names) == {"slake-grounding": 2}
    assert parse_repeat(None, names) == {}
    for bad in ("vqa-rad=2", "slake-grounding=0", "slake-grounding=1.5", "slake-grounding"):
        with pytest.raises(ConfigError, match="expected NAME=K with NAME one of --data"):
            parse_repeat(bad, names)
