"""Train page: train a model live, watch its loss, attention and gradients, replay snapshots, and make
the result the model every page shows.

Training runs in a worker process shared by the server's sessions (``explorer.workers``; at most
``EXPLORER_MAX_TRAININGS`` at once, later starts queue); this script talks to it through a proxy with the
``Trainer``'s methods and never waits for a training. While it runs (or waits for a slot), a ``run_every``
fragment redraws from ``trainer.status()`` and the latest snapshot twice a second.
"""

import streamlit as st

from explorer import checkpoint
from explorer.bundle import TASKS
from explorer.config import LAYER_NORM_PLACEMENTS, POSITIONAL_KINDS, ModelConfig
from explorer.figures import attention as attention_figs
from explorer.figures import interpret as interpret_figs
from explorer.figures import training as figs
from explorer.head_roles import role_badge, roles_over_training, scores_over_snapshots
from explorer.tasks import TASK_DESCRIPTIONS, TEXT_TASKS, ties_embeddings
from explorer.texts import TEXT_LABELS, TEXT_NAMES, UPLOADED, default_vocab_size, text_available
from explorer.trainer import DIVERGED, FAILED, FINISHED, RUNNING, STOPPED, Trainer
from explorer.training import (
    LIVE_MODEL,
    LIVE_STEPS,
    LIVE_TASK,
    TrainConfig,
    default_train_config,
    live_chunk_size,
    live_eval_every,
)
from explorer.workers import QUEUED, TrainingLost
from pages.common import (
    TRAINER_KEY,
    browser_session,
    chart,
    current_bundle,
    publish_trained,
    route_through_app,
    set_bundle,
    sidebar,
    training_pool,
)

UPLOAD_KEY = "train_upload_result"  # (file id, error or None) of the last checkpoint upload
ERROR_KEY = "train_error"  # why the last Start did not start, or None
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 1.0, 10.0, 1e4]

# First, before this page touches any state: a deep link to /train on a fresh server runs this file without
# app.py (see route_through_app), and it must go through the router like every other page.
route_through_app()

state = st.session_state
run, architecture = TrainConfig(), ModelConfig()  # every default comes from the library (explorer/training.py)
for key, value in {
    "train_task": LIVE_TASK,
    "train_text": run.text,
    "train_steps": LIVE_STEPS,
    "train_batch": run.batch_size,
    "train_layers": LIVE_MODEL["num_layers"],
    "train_heads": LIVE_MODEL["num_heads"],
    "train_d_model": LIVE_MODEL["d_model"],
    "train_positional": architecture.positional,
    "train_layer_norm": architecture.layer_norm,
    "train_lr": run.learning_rate,
    "train_seed": run.seed,
}.items():
    state.setdefault(key, value)


# Publishes this user's model if training has ended (pages.common.publish_trained); the live view below
# watches the training itself.
sidebar(watch_training=False)
st.title("Train")
st.caption(
    "Train a small encoder here and watch it learn: the loss falls, attention heads settle into patterns and "
    "the gradients calm down. When training ends, the trained model becomes the one every page shows."
)


def start_training() -> None:
    """The Start button's callback. Callbacks run before the script, so a click is never lost to a rerun;
    a problem is left in session state for the script to show."""
    state[ERROR_KEY] = None
    old = state.get(TRAINER_KEY)
    if old is not None:
        old.stop()
    task = state["train_task"]
    text_file = state.get("train_text_file")
    text, text_name = None, state["train_text"]
    if task in TEXT_TASKS and text_file is not None:
        try:
            text, text_name = text_file.getvalue().decode("utf-8"), UPLOADED
        except UnicodeDecodeError:
            state[ERROR_KEY] = f"{text_file.name} is not UTF-8 text; save it as UTF-8 and upload it again."
            return
    elif task in TEXT_TASKS and text_available(text_name):
        state[ERROR_KEY] = text_available(text_name)
        return
    d_model = state["train_d_model"]
    try:
        model_config = ModelConfig(
            vocab_size=default_vocab_size(text_name if task in TEXT_TASKS else "grammar"),
            d_model=d_model,
            num_heads=state["train_heads"],
            num_layers=state["train_layers"],
            ffn_size=4 * d_model,
            positional=state["train_positional"],
            layer_norm=state["train_layer_norm"],
            tie_embeddings=ties_embeddings(task),
        )
        base = default_train_config(task)
        steps = int(state["train_steps"])
        chunk = live_chunk_size(state["train_batch"], base.seq_len)
        train_config = base.replace(
            steps=steps,
            batch_size=int(state["train_batch"]),
            learning_rate=float(state["train_lr"]),
            text=text_name,
            seed=int(state["train_seed"]),
            steps_per_chunk=chunk,
            eval_every=live_eval_every(steps, chunk),
        )
        session_id, connected = browser_session()
        # One training per session: the pool closes this session's previous trainer once this one exists.
        trainer = training_pool().trainer(model_config, train_config, text=text, owner=session_id, alive=connected)
    except (ValueError, TrainingLost) as error:
        state[ERROR_KEY] = str(error)
        return
    state[TRAINER_KEY] = trainer
    trainer.start()


with st.form("train_form", border=True):
    c1, c2, c3, c4 = st.columns(4)
    c1.selectbox("Task", TASKS, key="train_task", format_func=lambda t: f"{t}: {TASK_DESCRIPTIONS[t]}")
    c2.number_input("Steps", min_value=10, max_value=50_000, step=50, key="train_steps")
    c3.select_slider("Batch size", options=[8, 16, 32, 64], key="train_batch")
    c4.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="train_seed")
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.select_slider("Layers", options=[1, 2, 3, 4], key="train_layers")
    c2.select_slider("Heads", options=[1, 2, 4, 8], key="train_heads")
    c3.select_slider("d_model", options=[16, 32, 64, 128], key="train_d_model")
    c4.selectbox("Positional encoding", POSITIONAL_KINDS, key="train_positional")
    c5.selectbox(
        "Layer norm",
        LAYER_NORM_PLACEMENTS,
        key="train_layer_norm",
        format_func=lambda v: {"post": "post-LN (paper)", "pre": "pre-LN"}[v],
    )
    st.select_slider(
        "Peak learning rate (warm-up, then cosine decay; 1e4 shows what a blow-up looks like)",
        options=LEARNING_RATES,
        key="train_lr",
        format_func=lambda v: f"{v:g}",
    )
    c1, c2 = st.columns(2)
    c1.selectbox("Text for mlm/causal", TEXT_NAMES, key="train_text", format_func=lambda name: TEXT_LABELS[name])
    c2.file_uploader("…or your own text (UTF-8 .txt)", type=["txt"], key="train_text_file")
    st.form_submit_button("Start training", type="primary", key="train_start", on_click=start_training)
if state.get(ERROR_KEY):
    st.error(state[ERROR_KEY])


def stop_training() -> None:
    state[TRAINER_KEY].stop()
    publish_trained()


trainer = state.get(TRAINER_KEY)
status = trainer.status() if trainer is not None else None
b1, b2, b3, _ = st.columns([1, 1, 1, 5])
b1.button(
    "Stop", key="train_stop", disabled=status is None or status.state not in (RUNNING, QUEUED), on_click=stop_training
)
b2.button(
    "Resume",
    key="train_resume",
    disabled=status is None or status.state not in ("idle", STOPPED),
    on_click=lambda: state[TRAINER_KEY].resume(),
)
# A failed training's worker may be gone with everything it held: start a new one instead.
b3.button(
    "Reset",
    key="train_reset",
    disabled=status is None or status.state == FAILED,
    on_click=lambda: state[TRAINER_KEY].reset(),
)


def draw_live() -> None:
    """Progress, loss, current attention and gradient telemetry, from one consistent status copy."""
    trainer = state.get(TRAINER_KEY)
    if trainer is None:
        st.info("Choose a task and settings above, then press **Start training**.")
        return
    status = trainer.status()
    if status.state != RUNNING and publish_trained():
        st.rerun()  # the whole page: the sidebar and the replay below should show the final model
    st.progress(status.progress, text=f"Step {status.step} of {status.total_steps} · {status.state}")
    m1, m2, m3, m4, m5 = st.columns(5)
    m1.metric("Step", f"{status.step}")
    m2.metric("Train loss", f"{status.loss[-1]:.4f}" if status.loss else "–")
    m3.metric("Held-out loss", f"{status.eval_loss[-1]:.4f}" if status.eval_loss else "–")
    m4.metric("Held-out accuracy", f"{status.eval_accuracy[-1]:.1%}" if status.eval_accuracy else "–")
    m5.metric("Steps / s", f"{status.steps_per_second:.0f}" if status.steps_per_second else "–")
    if status.state in (DIVERGED, FAILED):
        st.error(status.message)
    elif status.state == FINISHED:
        st.success(status.message + " This model is now the one every page shows.")
    elif status.state == QUEUED:
        st.info(status.message)
    else:
        st.caption(status.message)
    if status.state == FAILED:
        return  # the worker may be gone with the trainer: nothing more to read from it
    chart(
        figs.loss_figure(status.steps, status.loss, status.eval_steps, status.eval_loss, baseline=trainer.unigram_loss),
        key="train_loss_chart",
    )
    snapshot = trainer.snapshot()
    left, right = st.columns([3, 2])
    if snapshot is not None:
        with left:
            st.markdown(f"**Attention on the probe input at step {snapshot.step}**")
            chart(
                attention_figs.attention_grid(snapshot.attention, list(trainer.probe.labels)),
                key="train_live_attention",
            )
    with right:
        if status.closeness is not None:
            chart(
                figs.closeness_figure(status.closeness, "Attention vs the ideal pattern (held-out batch)"),
                key="train_closeness_chart",
            )
        else:
            st.caption(
                "The toy tasks (reverse, sort, copy) have a known ideal attention pattern; training one shows "
                "here how close each head gets to it."
            )
    if len(status.steps):
        chart(
            figs.telemetry_figure(status.steps, status.groups, status.group_grad_norms, status.group_update_ratios),
            key="train_telemetry_chart",
        )


if status is not None and status.state in (RUNNING, QUEUED):
    st.fragment(run_every=0.5)(draw_live)()
else:
    draw_live()


def use_snapshot(step: int) -> None:
    set_bundle(state[TRAINER_KEY].bundle(step=step))


def draw_replay(trainer: Trainer) -> None:
    """The step scrubber: attention, predictions and embeddings at any saved step."""
    steps = list(trainer.snapshot_steps())
    st.subheader("Watch attention form")
    if len(steps) < 2:
        st.caption("Snapshots appear here as training saves them (when it ends, or when you next use a control).")
        return
    if state.get("train_scrub") not in steps:
        state["train_scrub"] = steps[-1]
    step = st.select_slider("Snapshot step", options=steps, key="train_scrub")
    snapshot = trainer.snapshot(step)
    probe = trainer.probe
    pieces = [trainer.vocab.token_text(int(i)) for i in probe.inputs]
    history = roles_over_training(
        [trainer.snapshot(s).attention for s in steps], probe.inputs.tolist(), pieces, trainer.spec.causal
    )
    roles_now = history[steps.index(step)]
    badges = [[role_badge(cell["role"]) for cell in row] for row in roles_now]
    chart(
        attention_figs.attention_grid(snapshot.attention, list(probe.labels), badges=badges),
        key="train_replay_attention",
    )
    chart(
        interpret_figs.role_timeline_figure(
            steps, scores_over_snapshots(history), "Each head's score for the role it ends with", roles=history[-1]
        ),
        key="train_role_timeline",
    )
    if snapshot.closeness is not None:
        st.caption(
            "Closeness of this probe's attention to the ideal pattern, per layer (rows) and head (columns): "
            + "; ".join(" ".join(f"{v:.2f}" for v in row) for row in snapshot.closeness)
        )
    targets = [trainer.token_label(int(t)) for t in probe.targets]
    rows = [
        {
            "position": int(p),
            "input": probe.labels[int(p)],
            "target": t,
            "predicted": pred,
            "confidence": float(c),
            "right": pred == t,
        }
        for p, t, pred, c in zip(probe.positions, targets, snapshot.predicted, snapshot.confidence, strict=True)
    ]
    c1, c2 = st.columns(2)
    with c1:
        st.markdown(f"**Predictions on the probe at step {snapshot.step}**")
        st.dataframe(
            rows,
            key="train_replay_predictions",
            hide_index=True,
            column_config={"confidence": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)},
        )
    with c2:
        chart(
            figs.embedding_plane_figure(
                snapshot.embedding_points,
                snapshot.embedding_labels,
                f"Token embeddings at step {snapshot.step} (principal plane)",
            ),
            key="train_replay_embeddings",
        )
    # A callback, like the other buttons: it runs before the script, so a rerun cannot swallow the click.
    st.button(
        f"Use the model of step {snapshot.step} on every page",
        key="train_use_snapshot",
        on_click=use_snapshot,
        args=(snapshot.step,),
    )


if trainer is not None and status.state != FAILED:
    draw_replay(trainer)  # while training runs too: moving the scrubber fetches the snapshots saved so far

st.subheader("Checkpoints")
c1, c2 = st.columns(2)
with c1:
    bundle = current_bundle()
    st.markdown(f"Download the model every page shows now: *{bundle.source}*.")
    st.download_button(
        "Download checkpoint (.safetensors)",
        data=lambda: checkpoint.to_bytes(bundle),
        file_name=f"encoder-{bundle.task or 'untrained'}.safetensors",
        mime="application/octet-stream",
        key="train_download",
        on_click="ignore",
        icon=":material/download:",
    )
with c2:
    upload = st.file_uploader(
        "Open a checkpoint saved by this app (.safetensors, or .npz from older versions)",
        type=["safetensors", "npz"],
        key="train_checkpoint_upload",
    )
    if upload is not None:
        seen = state.get(UPLOAD_KEY)
        if seen is None or seen[0] != upload.file_id:
            try:
                set_bundle(checkpoint.from_bytes(upload.getvalue(), source=f"uploaded {upload.name}"))
                state[UPLOAD_KEY] = (upload.file_id, None)
                st.rerun()
            except checkpoint.CheckpointError as error:
                state[UPLOAD_KEY] = (upload.file_id, str(error))
        error = state[UPLOAD_KEY][1]
        if error:
            st.error(error)
        else:
            st.success(f"Loaded {upload.name}: every page now shows this model.")
