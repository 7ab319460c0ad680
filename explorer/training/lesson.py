"""A lesson is a link: live training settings as URL query parameters, and which controls a lesson hides.

``?task=copy&lr=0.01&seed=3&hide=architecture,text`` opens the Train page on the copy task with that
learning rate and seed, without the architecture and text controls. Only values the page offers are
accepted (``LIVE_CHOICES``); anything else is reported and left at its default, never an error page.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from explorer.training.config import LiveSettings

# Query parameter of each LiveSettings field. Short, and distinct from the other pages' parameters
# (``text`` is the shared sentence, ``model`` the model picker).
PARAMS = {
    "task": "task",
    "text": "corpus",
    "steps": "steps",
    "batch_size": "batch",
    "num_layers": "layers",
    "num_heads": "heads",
    "d_model": "d_model",
    "positional": "positional",
    "layer_norm": "layer_norm",
    "learning_rate": "lr",
    "seed": "seed",
}
HIDE_PARAM = "hide"
# Groups of controls a lesson can hide, and the settings each holds.
CONTROL_GROUPS = {
    "task": ("task",),
    "text": ("text",),
    "run": ("steps", "batch_size", "seed"),
    "architecture": ("num_layers", "num_heads", "d_model", "positional", "layer_norm"),
    "learning_rate": ("learning_rate",),
    "telemetry": (),  # the gradient telemetry chart
    "replay": (),  # the "Watch attention form" scrubber
    "checkpoints": (),  # download and upload
}


def _parse(field: dataclasses.Field, raw: str):
    kind = type(getattr(LiveSettings(), field.name))
    if kind is float:
        return float(raw)
    if kind is int:
        return int(raw)
    return raw


def settings_from_params(params: Mapping[str, str]) -> tuple[LiveSettings, list[str]]:
    """The settings a link asks for (defaults for what it leaves out), and a note per value it got wrong."""
    settings, problems = LiveSettings(), []
    for field in dataclasses.fields(LiveSettings):
        raw = params.get(PARAMS[field.name])
        if raw is None:
            continue
        try:
            settings = settings.replace(**{field.name: _parse(field, raw)})
        except (ValueError, TypeError) as error:
            problems.append(f"The link's {PARAMS[field.name]}={raw!r} was ignored: {error}")
    return settings, problems


def settings_to_params(settings: LiveSettings) -> dict[str, str]:
    """The query parameters of ``settings``: only the values that differ from the defaults."""
    default = LiveSettings()
    return {
        PARAMS[f.name]: f"{getattr(settings, f.name):g}" if f.type == "float" else str(getattr(settings, f.name))
        for f in dataclasses.fields(LiveSettings)
        if getattr(settings, f.name) != getattr(default, f.name)
    }


def hidden_from_params(params: Mapping[str, str]) -> frozenset[str]:
    """The control groups (``CONTROL_GROUPS``) a link hides; unknown names are ignored."""
    names = {name.strip() for name in params.get(HIDE_PARAM, "").split(",")}
    return frozenset(names & set(CONTROL_GROUPS))
