"""Lesson links: live training settings to URL query parameters and back, and hidden control groups."""

from __future__ import annotations

import dataclasses

import pytest

from explorer.training.config import LIVE_CHOICES, LiveSettings
from explorer.training.lesson import (
    CONTROL_GROUPS,
    PARAMS,
    hidden_from_params,
    settings_from_params,
    settings_to_params,
)


def test_every_setting_has_a_parameter_and_a_lesson_round_trips():
    assert set(PARAMS) == {f.name for f in dataclasses.fields(LiveSettings)}
    assert len(set(PARAMS.values())) == len(PARAMS) and not {"text", "model"} & set(PARAMS.values())
    assert settings_to_params(LiveSettings()) == {}
    lesson = LiveSettings(
        task="copy", steps=900, batch_size=8, num_layers=1, d_model=32, layer_norm="pre", learning_rate=1e-2, seed=42
    )
    params = settings_to_params(lesson)
    assert params["lr"] == "0.01" and params["seed"] == "42" and "heads" not in params  # defaults stay out
    assert settings_from_params(params) == (lesson, [])


@pytest.mark.parametrize(
    "name,value", [("lr", "0.5"), ("lr", "fast"), ("heads", "3"), ("task", "translate"), ("steps", "0")]
)
def test_a_value_the_page_does_not_offer_is_reported_and_left_at_its_default(name, value):
    settings, problems = settings_from_params({name: value, "seed": "9"})
    assert settings == LiveSettings(seed=9)
    assert len(problems) == 1 and f"{name}={value!r}" in problems[0]


def test_live_settings_build_configs_the_page_can_train():
    for task in LIVE_CHOICES["task"]:
        settings = LiveSettings(task=task)
        model, train = settings.model_config(), settings.train_config()
        assert train.task == task and model.num_layers == settings.num_layers
        assert train.eval_every % train.steps_per_chunk == 0
    changed = LiveSettings(d_model=128, learning_rate=1e-2)
    assert changed.needs_reset(LiveSettings()) == ("d_model",)  # the learning rate applies live


def test_hidden_control_groups():
    assert hidden_from_params({"hide": "architecture, text,bogus"}) == {"architecture", "text"}
    assert hidden_from_params({}) == frozenset()
    assert set(CONTROL_GROUPS["architecture"]) <= set(PARAMS)


@pytest.mark.parametrize("task", LIVE_CHOICES["task"])
def test_the_settings_of_a_run_read_back_from_its_configs(task):
    settings = LiveSettings(
        task=task, steps=900, num_layers=1, num_heads=2, layer_norm="pre", learning_rate=1e-2, seed=5
    )
    assert LiveSettings.from_configs(settings.model_config(), settings.train_config()) == settings
    uploaded = LiveSettings.from_configs(settings.model_config(True), settings.train_config(True))
    assert uploaded.text == LiveSettings().text  # an uploaded text is not kept: the default text stands in


def test_two_runs_are_told_apart_by_what_differs():
    current = LiveSettings()
    assert current.differences(current) == "same settings"
    earlier = current.replace(learning_rate=1e-2, seed=3, num_layers=1, layer_norm="pre")
    assert earlier.differences(current) == "layers 1 · pre-LN · lr 0.01 · seed 3"
    assert current.differences(earlier) == "layers 2 · post-LN · lr 0.003 · seed 0"
    # The text matters only to the text tasks.
    assert current.replace(text="grammar").differences(current) == "same settings"
    assert LiveSettings(task="mlm", text="grammar").differences(LiveSettings(task="mlm")) == "text grammar"
