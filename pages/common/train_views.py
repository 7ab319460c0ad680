"""The Train page's live views: progress, loss (with earlier runs), the probe's attention forming beside
the ideal pattern, and, in tabs below, closeness to the ideal and gradient telemetry (the replay of the
snapshots and head roles are ``pages.common.train_replay``).

Everything is drawn from one ``trainer.status()`` copy and the trainer's snapshots; nothing here waits
for training. While a run goes on (or waits for a training slot), these views are fragments that redraw
on a timer. The trainer lives in a worker process: once its status says FAILED, that worker may be gone,
so nothing more is read from it, and one that goes away mid-draw gives a message, not a traceback.
"""

from __future__ import annotations

import weakref

import streamlit as st

from explorer.figures import training as figs
from explorer.training.remote_trainer import LIVE_STATES, QUEUED
from explorer.training.status import DIVERGED, FAILED, FINISHED, RUNNING
from pages.common.session import TRAINER_KEY, publish_trained, reports_lost_training
from pages.common.train_runs import past_runs, run_number
from pages.common.widgets import chart

LIVE_FIGURES_KEY = "train_live_figures"  # name -> (weak ref to the trainer, the figure's inputs, figure)
STATE_WORDS = {"stopped": "paused", "idle": "ready"}
# The width the probe's attention is drawn at: the page's right-hand column at 1400 px (wider windows just
# leave room beside it).
PROBE_WIDTH = 540


def _rerun_when_ended(ticking: bool, status) -> None:
    """A ticking view whose run has ended reruns the page: the buttons, the sidebar and the model change."""
    if ticking and status.state not in LIVE_STATES:
        publish_trained()
        st.rerun()


def progress() -> None:
    """The latest numbers (the held-out ones name the step they were evaluated at: they lag the train
    loss), and the step counter with steps/s and epochs (text tasks)."""
    trainer = st.session_state.get(TRAINER_KEY)
    if trainer is None:
        st.info("Choose a task and settings above, then press **Play** (or **Step** for one update at a time).")
        return
    status = trainer.status()
    # The held-out numbers come from the latest evaluation: its step under them, grey, not a change.
    evaluated = (
        {"delta": f"step {status.eval_steps[-1]}", "delta_color": "off", "delta_arrow": "off"}
        if status.eval_steps
        else {}
    )
    m1, m2, m3, m4, m5, m6 = st.columns(6)
    m1.metric("Step", f"{status.step}")
    m2.metric("Steps / s", f"{status.steps_per_second:.0f}" if status.steps_per_second else "–")
    m3.metric("Train loss", f"{status.loss[-1]:.3g}" if status.loss else "–")
    m4.metric("Held-out loss", f"{status.eval_loss[-1]:.3g}" if status.eval_loss else "–", **evaluated)
    m5.metric("Held-out accuracy", f"{status.eval_accuracy[-1]:.1%}" if status.eval_accuracy else "–", **evaluated)
    m6.metric("Learning rate now", f"{status.learning_rate[-1]:.2g}" if status.learning_rate else "–")
    epoch = f" · epoch {status.epoch:.2f}" if status.epoch is not None else ""
    word = STATE_WORDS.get(status.state, status.state)
    st.progress(status.progress, text=f"Step {status.step} of {status.total_steps}{epoch} · {word}")
    if status.state in (DIVERGED, FAILED):
        st.error(status.message)
        if status.state == DIVERGED:
            st.caption(
                "The model every page shows is unchanged. To look at this run anyway, pick its last finite "
                f"step ({status.step}) under **Watch attention form** and use it."
            )
    elif status.state == FINISHED:
        st.success(
            f"{status.message} Its model is offered under **Model** in the sidebar: pick it there to see it "
            "on every page."
        )
    elif status.state == QUEUED:
        st.info(status.message)  # its place in the queue for a training slot
    elif status.state != RUNNING:  # running, the counter says it all
        st.caption(status.message)


def probe_figure(snapshot, info, badges=None):
    """A snapshot's attention on the probe, beside the task's ideal pattern (toy tasks)."""
    what = "Replay" if badges else "Live"
    return figs.probe_attention_figure(
        snapshot.attention,
        list(info.probe.labels),
        f"{what}: attention on the probe at step {snapshot.step} (rows: queries, columns: keys)",
        ideal=info.probe.ideal,
        badges=badges,
        width=PROBE_WIDTH,
    )


def _live_attention(trainer, status, info):
    """The latest snapshot's attention figure, or None. Built again only when a snapshot is added (with its
    evaluation: the latest evaluation names it), not on every redraw of the charts."""
    if not status.snapshot_steps:
        return None

    def build():
        snapshot = trainer.snapshot()
        return None if snapshot is None else probe_figure(snapshot, info)

    return cached("live attention", trainer, latest_evaluation(status), build)


def latest_evaluation(status):
    """What names the latest evaluation: its step and loss (after a Reset the same steps come back with
    new numbers)."""
    return (status.eval_steps[-1], status.eval_loss[-1]) if status.eval_steps else None


def cached(name: str, trainer, inputs, build):
    """``build()``, or the figure it gave last time for this trainer and these ``inputs``: a paused or
    finished run, or one whose evaluation has not moved, redraws without building again."""
    cache = st.session_state.setdefault(LIVE_FIGURES_KEY, {})
    hit = cache.get(name)
    if hit is not None and hit[0]() is trainer and hit[1] == inputs:
        return hit[2]
    figure = build()
    if figure is not None:  # nothing to draw yet: try again next time
        cache[name] = (weakref.ref(trainer), inputs, figure)
    return figure


def running_trainer(ticking: bool):
    """This user's trainer and its status, or (None, None): none yet, or (for a ticking view) a run that has
    just ended, which reruns the page instead (the buttons and the sidebar change)."""
    trainer = st.session_state.get(TRAINER_KEY)
    if trainer is None:
        return None, None
    status = trainer.status()
    _rerun_when_ended(ticking, status)
    return trainer, status


@reports_lost_training(st.error)
def loss_chart(ticking: bool) -> None:
    """This run's loss over the earlier runs'."""
    trainer, status = running_trainer(ticking)
    if trainer is None:
        return
    past = past_runs()
    name = f"run {run_number()}" if past else None
    if status.state == FAILED:  # its worker may be gone: only what the status holds
        loss = figs.loss_figure(
            status.steps, status.loss, status.eval_steps, status.eval_loss, earlier=past, run_label=name
        )
        chart(loss, key="train_loss_chart")
        return
    info = trainer.info()
    # Only what changes the figures keys them: the step and the number of points stand for the curves.
    curves = (status.step, len(status.steps), len(status.eval_steps), latest_evaluation(status))
    loss = cached(
        "loss",
        trainer,
        (curves, tuple(run["label"] for run in past), name, info.unigram_loss),
        lambda: figs.loss_figure(
            status.steps,
            status.loss,
            status.eval_steps,
            status.eval_loss,
            baseline=info.unigram_loss,
            earlier=past,
            run_label=name,
        ),
    )
    chart(loss, key="train_loss_chart")


@reports_lost_training(st.error)
def live_attention(ticking: bool) -> None:
    """The probe's attention at the latest snapshot, beside the ideal pattern of a toy task."""
    trainer, status = running_trainer(ticking)
    if trainer is None or status.state == FAILED:
        return
    figure = _live_attention(trainer, status, trainer.info())
    if figure is None:
        st.caption("The probe's attention appears here at the first snapshot.")
        return
    chart(figure, key="train_live_attention")


@reports_lost_training(st.error)
def closeness(ticking: bool) -> None:
    """Toy tasks: each head's closeness to the ideal pattern now (held-out batch) and over the snapshots."""
    trainer, status = running_trainer(ticking)
    if trainer is None or status.state == FAILED:
        return
    if status.closeness is None:
        st.caption(
            "The toy tasks (reverse, sort, copy) have a known ideal attention pattern; training one shows "
            "here how close each head gets to it."
        )
        return
    evaluated = (len(status.closeness_steps), latest_evaluation(status))  # it changes with each snapshot
    now, timeline = st.columns([2, 3])
    with now:
        figure = cached(
            "closeness",
            trainer,
            evaluated,
            lambda: figs.closeness_figure(status.closeness, "Attention vs the ideal pattern (held-out batch)"),
        )
        chart(figure, key="train_closeness_chart")
    if status.closeness_history is not None and len(status.closeness_steps) > 1:
        with timeline:
            figure = cached(
                "closeness timeline",
                trainer,
                evaluated,
                lambda: figs.closeness_timeline_figure(status.closeness_steps, status.closeness_history),
            )
            chart(figure, key="train_closeness_timeline")


@reports_lost_training(st.error)
def telemetry(ticking: bool) -> None:
    """Gradient norm and update/weight ratio per parameter group."""
    trainer, status = running_trainer(ticking)
    if trainer is None or status.state == FAILED or not len(status.steps):
        st.caption("Gradient norms and update sizes per parameter group appear here as the model trains.")
        return
    curves = (status.step, len(status.steps))
    figure = cached(
        "telemetry",
        trainer,
        curves,
        lambda: figs.telemetry_figure(status.steps, status.groups, status.group_grad_norms, status.group_update_ratios),
    )
    chart(figure, key="train_telemetry_chart")
