"""Train page: train a model live, as in TensorFlow Playground -- Play/Pause, Step, Reset, a learning rate
that changes while it runs, every setting in the link -- and watch its loss and attention on one screen.

One screen, as Playground's: a top row (title, Play/Pause, Step, Reset, lesson link), the settings in two
rows, then the progress and loss beside the probe's attention (next to the ideal pattern of a toy task).
What a learner looks at second is in tabs below: the replay of the snapshots, head roles, closeness to
the ideal, gradient telemetry and checkpoints. Only the open tab is computed.

Training runs in a worker process shared by the server's sessions (``pages.common.session.make_trainer``,
``explorer.training.workers``: at most ``EXPLORER_MAX_TRAININGS`` at once, later starts queue), which
this script never waits for. While it runs or waits, fragments redraw from ``trainer.status()`` and its
snapshots on a timer, so the rest of the app stays usable. The link names the run: a reload takes it up.
"""

import streamlit as st

from explorer.training.remote_trainer import LIVE_STATES
from pages.common import TRAINER_KEY, sidebar
from pages.common import train_controls as controls
from pages.common import train_replay as replay
from pages.common import train_runs as runs
from pages.common import train_views as views
from pages.common.checkpoints import checkpoint_section

# Before the sidebar, which offers this user's trained model: a reloaded page takes its run up first.
controls.settings()
runs.take_up_run()
# First, as on every page: routes a deep link through app.py (route_through_app), and offers this user's
# model if training has ended (pages.common.publish_trained); the live view below watches the training itself.
sidebar(watch_training=False)
hidden = controls.hidden()
controls.header()
with st.container(border=True, key="train_settings"):
    controls.settings_widgets()
controls.notes()
controls.sync_settings_url()

trainer = st.session_state.get(TRAINER_KEY)
running = trainer is not None and trainer.status().state in LIVE_STATES  # queued too: it starts by itself
# The counter ticks often and costs little. The charts redraw every 2 s: each redraw also costs every
# watching browser its plotting, which slows the other sessions on a shared server, and their figures are
# rebuilt only when their inputs change (pages.common.train_views).
charts_every = 2.0 if running else None
st.fragment(run_every=0.25 if running else None)(views.progress)()
left, right = st.columns([940 - views.PROBE_WIDTH, views.PROBE_WIDTH], gap="medium")
with left:
    st.fragment(run_every=charts_every)(views.loss_chart)(running)
with right:
    st.fragment(run_every=charts_every)(views.live_attention)(running)

# Below the screen, one view at a time: a tab's view is computed only while it is open. The replay ticks while
# the run goes on even when the user holds it on a step: "Follow live", clicked inside the fragment, reruns
# only the fragment, so a timer set by whether it followed at the last full run would leave it still after
# that click. Held on a step, a tick rebuilds nothing until a snapshot is added.
tabs = {
    "Watch attention form": None if "replay" in hidden else replay.replay,
    "Head roles": None if "replay" in hidden else replay.head_roles,
    "Closeness to the ideal": views.closeness,
    "Gradient telemetry": None if "telemetry" in hidden else views.telemetry,
    "Checkpoints": None if "checkpoints" in hidden else checkpoint_section,
}
tabs = {label: view for label, view in tabs.items() if view is not None}
for tab, view in zip(st.tabs(list(tabs), key="train_tab", on_change="rerun"), tabs.values(), strict=True):
    if tab.open is not False:  # None where tabs do not report it: then every view is drawn
        with tab:
            if view is checkpoint_section:
                view()
            else:
                st.fragment(run_every=charts_every)(view)(running)
