"""Tests of explorer/interpret: analysis, head roles, rollout, logit lens, query/key maps, probes, similarity."""
