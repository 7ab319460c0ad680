"""Tests of explorer/training: tasks, the step, the Trainer, lesson links, worker processes."""
