"""Tests of explorer/model: config, the encoder and its parts, checkpoints, pretrained weights, inference."""
