"""`python -m explorer trace`: one layer of the encoder for one token and one head, every step with its
real numbers (``explorer.interpret.trace``), as JSON or as a readable list.

Layers and heads count from 1 and positions from 0, as in `inspect`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.interpret.trace import trace_layer
from explorer.model.bundle import ModelBundle
from explorer.model.inference import InferenceEngine, use_synchronous_dispatch
from explorer.pipeline import prepare_text, run_text
from explorer.text.tokenizer import display_text


def check_choice(flag: str, value: int, low: int, high: int, what: str) -> None:
    """One line saying which flag is out of range and what range the model and text allow."""
    if not low <= value <= high:
        raise ValueError(f"{flag} {value} is out of range: {what} ({low}–{high}).")


def trace_text(bundle: ModelBundle, text: str, layer: int, head: int, position: int, causal: bool = False):
    """The text through the pipeline (tokens and the residual stream entering the layer are the model's
    own), then the layer recomputed step by step. ``layer`` and ``head`` count from 1, ``position`` from 0.

    Returns ``(prepared text, LayerTrace)``.
    """
    config = bundle.config
    check_choice("--layer", layer, 1, config.num_layers, f"the model has {config.num_layers} layers")
    check_choice("--head", head, 1, config.num_heads, f"the model has {config.num_heads} heads per layer")
    prepared = prepare_text(bundle, text)
    check_choice("--position", position, 0, len(prepared) - 1, f"the text has {len(prepared)} tokens")
    use_synchronous_dispatch()
    run = run_text(bundle, InferenceEngine(config), prepared, causal=causal)
    trace = trace_layer(
        bundle.params,
        config,
        run.result.hidden_states,
        layer - 1,
        head - 1,
        position,
        causal=causal,
        tokens=prepared.labels,
    )
    return prepared, trace


def trace_payload(bundle: ModelBundle, text: str, layer: int, head: int, position: int, causal: bool) -> dict:
    """What `trace --json` prints: every step's name, formula (LaTeX), shape and value (6 decimals)."""
    prepared, trace = trace_text(bundle, text, layer, head, position, causal)
    return {
        "text": text,
        "layer": layer,
        "head": head,
        "position": position,
        "causal": causal,
        "tokens": list(prepared.tokens.pieces),
        "steps": [
            {
                "name": step.name,
                "title": step.title,
                "formula": step.formula,
                "shape": list(step.shape),
                "value": np.round(step.value, 6).tolist(),
                "caption": step.caption,
            }
            for step in trace.steps
        ],
        "model": {"source": bundle.source, "task": bundle.task},
        "notices": list(prepared.notices),
    }


def _summary(value: np.ndarray) -> str:
    flat = value.reshape(-1)
    shown = " ".join(f"{v:+.3f}" for v in flat[:6]) + (" …" if flat.size > 6 else "")
    return f"[{shown}]  norm {np.linalg.norm(flat):.3f}"


def format_trace(payload: dict[str, Any]) -> str:
    """The steps as lines a person reads in a terminal: name, shape, formula, a few values, the caption."""
    token = display_text(payload["tokens"][payload["position"]])
    lines = [f"note: {notice}" for notice in payload["notices"]]
    lines.append(
        f"layer {payload['layer']}, head {payload['head']}, query {payload['position']} ({token})"
        + (", causal mask" if payload["causal"] else "")
        + f"  [{payload['model']['source']}]"
    )
    for step in payload["steps"]:
        value = np.asarray(step["value"], np.float64)
        lines.append(f"\n{step['name']}  {tuple(step['shape'])}  {step['formula']}")
        lines.append(f"  {_summary(value)}")
        lines.append(f"  {step['caption']}")
    return "\n".join(lines)
