"""Model: what an encoder is, its parameters on disk, and how to run it without recompiling.

- ``config``: ``ModelConfig``, the frozen, validated architecture;
- ``positional``: the sinusoidal positional encoding of "Attention is all you need";
- the encoder, from named parts: ``attention`` (the masked softmax, ``SelfAttention``, the attention
  mask), ``feed_forward``, ``embeddings`` (token, position, token type, embedding norm), ``layer``
  (``EncoderLayer``: post- or pre-LN), ``output_head`` (tied, untied or none), and ``encoder``
  (``Encoder`` composing them and returning every intermediate; ``build_model``, ``init_params``);
- ``bundle``: a model with its parameters and vocabulary; ``checkpoint``: bundles as ``.safetensors``
  files; ``pretrained``: BERT, RoBERTa, DistilBERT and ELECTRA checkpoints (MiniLM-L6 ships with the app)
  from a folder or a Hugging Face Hub id, mapped onto this encoder's parameter names by one adapter per
  architecture;
- ``inference``: the bucketed, recompile-free forward (``InferenceEngine``).

May import: text.
"""
