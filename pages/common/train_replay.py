"""The Train page's views of the saved snapshots: the "Watch attention form" replay (a step scrubber over
attention with head roles beside the ideal, predictions and embeddings) and each head's role over the
snapshots. The scrubber follows a running training until the user moves it.
"""

from __future__ import annotations

import streamlit as st

from explorer.figures import interpret as interpret_figs
from explorer.figures import training as figs
from explorer.interpret.head_roles import role_badge, roles_over_training, scores_over_snapshots
from explorer.training.remote_trainer import TrainingLost
from explorer.training.status import FAILED
from pages.common.session import TRAINER_KEY, reports_lost_training, set_bundle
from pages.common.train_views import PROBE_WIDTH, cached, latest_evaluation, probe_figure, running_trainer
from pages.common.widgets import chart

SCRUB_KEY = "train_scrub"  # the scrubber once the user has moved it: the step they chose
FOLLOW_KEY = "train_scrub_follows"  # the scrubber follows the latest snapshot until the user moves it
ROUND_KEY = "train_scrub_round"  # counts returns to "Follow live": each round's live scrubbers are new widgets


def _follow_live() -> None:
    state = st.session_state
    state[FOLLOW_KEY], state[ROUND_KEY] = True, state.get(ROUND_KEY, 0) + 1


def _use_snapshot(step: int) -> None:
    try:
        set_bundle(st.session_state[TRAINER_KEY].bundle(step=step))
    except TrainingLost as error:
        st.toast(f"{error} The model every page shows is unchanged.")


def _role_history(trainer, info, steps: list[int]):
    """Every saved snapshot's head roles, and the role timeline drawn from them: what scoring costs most
    in the replay, and what does not depend on the scrubber's position."""
    probe = info.probe
    history = roles_over_training(
        [trainer.snapshot(s).attention for s in steps], probe.inputs.tolist(), list(probe.pieces), info.spec.causal
    )
    roles = interpret_figs.role_timeline_figure(
        steps, scores_over_snapshots(history), "Each head's score for the role it ends with", roles=history[-1]
    )
    return history, roles


def _replay_figures(trainer, info, step: int, roles_then: list[list[dict]]):
    """The replay at ``step`` (whose head roles are ``roles_then``): attention with role badges (beside the
    ideal), the embedding plane, the prediction rows and the snapshot's step."""
    snapshot, probe = trainer.snapshot(step), info.probe
    badges = [[role_badge(cell["role"]) for cell in row] for row in roles_then]
    attention = probe_figure(snapshot, info, badges=badges)
    rows = [
        {"position": int(p), "input": probe.labels[int(p)], "target": t, "predicted": pred, "confidence": float(c), "right": pred == t}
        for p, t, pred, c in zip(probe.positions, probe.target_labels, snapshot.predicted, snapshot.confidence, strict=True)
    ]  # fmt: skip
    title = f"Token embeddings at step {snapshot.step} (principal plane)"
    embeddings = figs.embedding_plane_figure(snapshot.embedding_points, snapshot.embedding_labels, title)
    return attention, embeddings, rows, snapshot.step


def _saved_steps(ticking: bool):
    """(trainer, status, info, saved steps) for the views of the snapshots, or None while there are fewer
    than two (then says so) or the run's worker is gone (its snapshots went with it)."""
    trainer, status = running_trainer(ticking)
    if trainer is None or status.state == FAILED:
        return None
    steps = list(trainer.snapshot_steps())
    if len(steps) < 2:
        st.caption("Snapshots appear here as training saves them.")
        return None
    return trainer, status, trainer.info(), steps


def _roles(trainer, status, info, steps):
    # Reading every snapshot and scoring the head roles, the replay's main cost, waits for a new snapshot.
    saved = (tuple(steps), latest_evaluation(status))
    return saved, cached("replay roles", trainer, saved, lambda: _role_history(trainer, info, steps))


@reports_lost_training(st.error)
def replay(ticking: bool) -> None:
    """The step scrubber: attention (with head roles), predictions and embeddings at any saved step. While
    it follows a running training, it moves to each new snapshot."""
    found = _saved_steps(ticking)
    if found is None:
        return
    trainer, status, info, steps = found
    state = st.session_state
    c1, c2 = st.columns([6, 1], vertical_alignment="bottom")
    if state.setdefault(FOLLOW_KEY, True):
        # Following, the scrubber is a new widget for each newest snapshot, its value given and never written
        # into its key, and no on_change: every rerun request carries the browser's widget values, and one
        # sent (by the ticking counter) before the browser had the newest step echoed the older one back,
        # which Streamlit reports as a change, so the scrubber stopped following by itself. A live scrubber's
        # value differs from the newest step only when the user has moved it.
        live_key = f"{SCRUB_KEY}_live_{state.get(ROUND_KEY, 0)}_{steps[-1]}"
        step = c1.select_slider("Snapshot step", options=steps, value=steps[-1], key=live_key)
        if step != steps[-1]:
            state[SCRUB_KEY], state[FOLLOW_KEY] = step, False  # held there from the next redraw on
    else:
        if state.get(SCRUB_KEY) not in steps:  # a Reset took the chosen step away
            state[SCRUB_KEY] = steps[-1]
        step = c1.select_slider("Snapshot step", options=steps, key=SCRUB_KEY)
    c2.button("Follow live", key="train_follow", disabled=state[FOLLOW_KEY], on_click=_follow_live, width="stretch")
    # Following a run, most redraws add no snapshot and leave the scrubber where it was, so nothing is rebuilt;
    # moving the scrubber rebuilds only the figures of that step.
    saved, (history, _) = _roles(trainer, status, info, steps)
    attention, embeddings, rows, shown = cached(
        "replay", trainer, (*saved, step), lambda: _replay_figures(trainer, info, step, history[steps.index(step)])
    )
    left, right = st.columns([PROBE_WIDTH, 940 - PROBE_WIDTH])
    with left:
        chart(attention, key="train_replay_attention")
        st.button(
            f"Use the model of step {shown} on every page",
            key="train_use_snapshot",
            on_click=_use_snapshot,
            args=(shown,),
            icon=":material/check:",
        )
    with right:
        st.markdown(f"**Predictions on the probe at step {shown}**")
        st.dataframe(
            rows,
            key="train_replay_predictions",
            hide_index=True,
            height=250,
            column_config={"confidence": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)},
        )
        chart(embeddings, key="train_replay_embeddings")


@reports_lost_training(st.error)
def head_roles(ticking: bool) -> None:
    """Each head's score, over the snapshots, for the role it ends with."""
    found = _saved_steps(ticking)
    if found is None:
        return
    _, (_, roles) = _roles(*found)
    chart(roles, key="train_role_timeline")
