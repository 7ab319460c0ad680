"""Config validation gives actionable errors; configs are hashable and round-trip through dicts."""

import dataclasses

import pytest

from explorer.model.config import ModelConfig


def test_defaults_valid_and_hashable():
    config = ModelConfig()
    assert config.key_size * config.num_heads == config.d_model
    assert hash(config) == hash(ModelConfig())
    assert ModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"d_model": 30, "num_heads": 4}, "divisible by num_heads"),
        ({"d_model": 0}, "between"),
        ({"num_layers": 0}, "between"),
        ({"num_heads": 2.5}, "whole number"),
        ({"positional": "rotary"}, "positional must be one of"),
        ({"layer_norm": "sandwich"}, "layer_norm must be one of"),
        ({"dropout": 1.0}, r"\[0, 1\)"),
        ({"d_model": 9, "num_heads": 3}, "even"),
        ({"vocab_size": 10**9}, "between"),
        ({"max_len": True}, "whole number"),
    ],
)
def test_invalid_settings_are_explained(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**changes)


def test_divisibility_error_suggests_head_counts():
    with pytest.raises(ValueError) as error:
        ModelConfig(d_model=48, num_heads=5)
    assert "num_heads in" in str(error.value) and "6" in str(error.value)


def test_frozen_and_replace():
    config = ModelConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.d_model = 8
    assert dataclasses.replace(config, num_layers=3).num_layers == 3


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="Unknown model config field"):
        ModelConfig.from_dict({"d_model": 64, "n_embd": 64})
