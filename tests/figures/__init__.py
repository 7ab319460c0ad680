"""Tests of explorer/figures: traces, axes, labels and hover text, without a browser."""
