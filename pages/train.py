"""Train page: train a model live, as in TensorFlow Playground -- Play/Pause, Step, Reset, a learning rate
that changes while it runs, every setting in the link -- and watch its loss, attention and gradients.

Training runs in a worker process shared by the server's sessions (``pages.common.session.make_trainer``,
``explorer.training.workers``: at most ``EXPLORER_MAX_TRAININGS`` at once, later starts queue), which
this script never waits for. While it runs or waits, fragments redraw from ``trainer.status()`` and its
snapshots on a timer, so the rest of the app stays usable.
"""

import streamlit as st

from explorer.training.remote_trainer import LIVE_STATES
from pages.common import TRAINER_KEY, sidebar
from pages.common import train_controls as controls
from pages.common import train_views as views
from pages.common.checkpoints import checkpoint_section

# First, as on every page: routes a deep link through app.py (route_through_app), and publishes this user's
# model if training has ended (pages.common.publish_trained); the live view below watches the training itself.
sidebar(watch_training=False)
st.title("Train")
st.caption(
    "Train a small encoder here and watch it learn: the loss falls, attention heads settle into patterns and "
    "the gradients calm down. **Play** trains, **Step** makes one update, **Reset** starts again from the "
    "same seed. The page address keeps every setting: share it as a lesson."
)
hidden = controls.hidden()
controls.settings()
with st.container(border=True):
    controls.settings_widgets()
    controls.control_bar()
controls.sync_settings_url()

trainer = st.session_state.get(TRAINER_KEY)
running = trainer is not None and trainer.status().state in LIVE_STATES  # queued too: it starts by itself
# The counter ticks often and costs little. The charts and the replay redraw every 2 s: each redraw also costs
# every watching browser its plotting, which slows the other sessions on a shared server, and their figures
# are rebuilt only when their inputs change (pages.common.train_views).
st.fragment(run_every=0.25 if running else None)(views.progress)()
st.fragment(run_every=2.0 if running else None)(views.charts)(running, "telemetry" in hidden)
if "replay" not in hidden:
    # It ticks while the run goes on even when the user holds it on a step: "Follow live", clicked inside the
    # fragment, reruns only the fragment, so a timer set by whether it followed at the last full run would
    # leave it still after that click. Held on a step, a tick rebuilds nothing until a snapshot is added.
    st.fragment(run_every=2.0 if running else None)(views.replay)(running)
if "checkpoints" not in hidden:
    checkpoint_section()
