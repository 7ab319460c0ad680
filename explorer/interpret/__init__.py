"""Interpret: what a model does, read from its intermediates.

- ``analysis``: the numpy maths behind the views (projections, attention summaries, layer-norm
  statistics); ``shapes``: the shape walk of the forward pass and the parameter groups;
- ``head_roles``: a role and a score for every head over held-out sentences; ``rollout``: attention
  rollout; ``logit_lens``: the output head on every residual snapshot; ``qk_map``: one head's queries and
  keys; ``pos_probe``: a part-of-speech probe at every depth, on ``tagged_sentences``; ``trace``: one layer
  recomputed step by step for one token and one head, with formulas and captions (``activations``: the
  feed-forward activations in numpy);
- ``similarity``: sentence embeddings and token-by-token similarity; ``cloze``: held-out masked-token
  evaluation against baselines.

May import: text, model.
"""
