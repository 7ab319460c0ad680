"""A pretrained model, named by a folder or a Hub id, as a ``ModelBundle``: the one path the app, the CLI and
the benchmarks load one by.

Before any weight is read, the memory the model needs is worked out from its weights' header and its
config (``memory_needed``) and reported; a model that would not fit in the memory this machine has free is
refused rather than loaded until the process is killed. The weights are then read one tensor at a time,
mapped by the architecture's adapter (``registry``), converted to float32 and put on the device once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from explorer.model.bundle import FEATURE_EXTRACTION, MASKED_LM, ModelBundle
from explorer.model.config import ModelConfig
from explorer.model.encoder import count_parameters, layer_norm_names
from explorer.model.pretrained import hub
from explorer.model.pretrained.adapter import PrefixedTensors, UnsupportedModel, map_parameters
from explorer.model.pretrained.folder import PretrainedUnavailable, SafetensorsWeights, open_folder
from explorer.model.pretrained.registry import adapter_for
from explorer.text.pretrained_vocab import PretrainedVocab

Progress = Callable[[str], None]
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class MemoryEstimate:
    """What a model needs in memory once loaded, in bytes (batch 1, the longest input).

    Attributes:
      parameters: how many numbers its weights hold.
      weights: the float32 parameters (4 bytes each, whatever the file's dtype).
      activations: one forward pass at ``max_len`` tokens: every intermediate the encoder returns (attention
        scores and weights ``[L, H, T, T]``, hidden states, layer norms, logits ``[T, V]``), counted three
        times: the compiled program's working buffers, its stacked outputs, and the copy the caller reads
        (measured on BERT-base- and BERT-large-sized models, ``bench/bench_own_model.py``).

    Loading holds the weights twice for a moment (read, then put on the device), which stays below the total
    for the BERT family.
    """

    parameters: int
    weights: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.activations

    def describe(self) -> str:
        return (
            f"{self.parameters / 1e6:.1f}M parameters; needs about {_gigabytes(self.total)} of memory "
            f"({_gigabytes(self.weights)} of float32 weights, {_gigabytes(self.activations)} for a longest input's "
            "intermediates)"
        )


def _gigabytes(count: int) -> str:
    return f"{count / 2**30:.2f} GB" if count >= 2**30 / 10 else f"{count / 2**20:.0f} MB"


def memory_needed(config: ModelConfig, parameters: int) -> MemoryEstimate:
    """The memory a model of ``config`` with ``parameters`` numbers needs (see ``MemoryEstimate``)."""
    t, d, e, v = config.max_len, config.d_model, config.embedding_width, config.vocab_size if config.output_head else 0
    layers, heads, norms = config.num_layers, config.num_heads, len(layer_norm_names(config))
    outputs = (
        2 * layers * heads * t * t  # attention scores and weights
        + (2 * layers + 1) * t * d  # residual stream snapshots
        + 2 * norms * t * d  # layer-norm inputs and outputs
        + 2 * layers * t * d  # attention and feed-forward outputs
        + t * d  # final hidden states
        + 4 * t * e  # token, position and type embeddings, their sum
        + t * v  # logits
        + t * config.ffn_size  # the widest temporary (the feed-forward's inner layer)
    )
    return MemoryEstimate(parameters, parameters * FLOAT32_BYTES, 3 * outputs * FLOAT32_BYTES)


def available_memory() -> int | None:
    """Bytes of memory this machine has free (Linux's MemAvailable), or None where that is unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def load_folder(
    path: str | Path,
    name: str | None = None,
    source: str | None = None,
    task: str | None = None,
    encoding: str | None = None,
    info: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> ModelBundle:
    """A model folder in Hugging Face's layout as a bundle (see ``explorer.model.pretrained.folder``).

    Args:
      name: a short name (default: the folder's); source: the label views show; task: what it was trained
        for (default: ``MASKED_LM`` with a masked-LM head, else ``FEATURE_EXTRACTION``); encoding: the
        vocabulary's display name (default: ``"NAME WordPiece"`` or ``"NAME byte-level BPE"``).
      progress: called with a sentence at each stage (the memory needed comes before any weight is read).

    Raises:
      PretrainedUnavailable, UnsupportedModel, WeightMappingError, TokenizerUnavailable (all with one
      sentence saying what is wrong; the last three are ``ValueError``).
    """
    report = progress or (lambda message: None)
    folder = open_folder(path)
    name = name or folder.path.name
    adapter = adapter_for(folder.hf_config)
    weights = SafetensorsWeights(folder.weights)
    tensors = PrefixedTensors(weights, adapter)
    config = adapter.config(folder.hf_config, tensors)
    estimate = memory_needed(config, weights.parameters)
    report(f"{name}: {estimate.describe()}.")
    free = available_memory()
    if free is not None and estimate.total > free:
        raise UnsupportedModel(
            f"{name} needs about {_gigabytes(estimate.total)} of memory, more than the {_gigabytes(free)} this "
            "machine has free."
        )
    vocab_name = encoding or f"{name} {{kind}}"
    vocab = PretrainedVocab(str(folder.path), vocab_name, rows=config.vocab_size)
    if "{kind}" in vocab_name:  # the tokenizer says which kind it is once it is read
        vocab = PretrainedVocab(str(folder.path), vocab_name.format(kind=vocab.kind), rows=config.vocab_size)
    report(f"Reading {len(weights)} tensors ({weights.file_bytes / 2**20:.0f} MB)…")
    params, ignored = map_parameters(adapter, tensors, config)
    params = jax.device_put(params)
    architecture = folder.hf_config.get("architectures")
    details = {
        "model type": adapter.model_type,
        "architecture": ", ".join(architecture) if isinstance(architecture, list) else adapter.model_type,
        "parameters": sum(count_parameters(params).values()),
        "tokenizer": f"{vocab.kind} ({', '.join(folder.tokenizer)})",
        "memory": estimate.describe(),
        "ignored tensors": ignored,
        **(info or {}),
    }
    return ModelBundle(
        config=config,
        params=params,
        vocab=vocab,
        source=source or f"pretrained: {name}",
        task=task or (MASKED_LM if config.output_head else FEATURE_EXTRACTION),
        info=details,
        name=name,
    )


MINILM = "minilm"


def load_model(spec: str, progress: Progress | None = None) -> ModelBundle:
    """A pretrained model by what a user types: ``minilm`` (shipped), a folder, or a Hugging Face Hub id.

    A folder that exists wins over a Hub id of the same spelling (write ``./name`` to be sure).
    """
    spec = spec.strip()
    if spec == MINILM:
        from explorer.model.pretrained import load_minilm

        return load_minilm()
    path = Path(spec).expanduser()
    if path.is_dir():
        return load_folder(path, source=f"pretrained: {path.name} (folder {path})", progress=progress)
    if not hub.looks_like_hub_id(spec):
        raise PretrainedUnavailable(f"{spec} is not a folder (nor a Hugging Face Hub id such as bert-base-uncased).")
    folder = hub.resolve(spec, progress)
    extra = {"hub id": spec, "revision": folder.name}
    return load_folder(
        folder, name=spec, source=f"pretrained: {spec} (Hugging Face Hub)", info=extra, progress=progress
    )
