"""Checkpoints on the Train page: download the model every page shows, or open one saved by this app.

An upload is read once per file (``UPLOAD_KEY`` remembers which, and what went wrong), with
``explorer.model.checkpoint.from_bytes``: safetensors or the old ``.npz``, never a pickle.
"""

from __future__ import annotations

import streamlit as st

from explorer.model import checkpoint
from explorer.model.bundle import PRETRAINED_TASKS
from pages.common.session import UPLOADED, current_bundle, set_bundle

UPLOAD_KEY = "train_upload_result"  # (file id, error or None) of the last checkpoint upload


def open_checkpoint(data: bytes, name: str) -> str | None:
    """Makes an uploaded checkpoint the model this user's pages show (an entry of its own in the picker); the
    reason it cannot, or None."""
    try:
        set_bundle(checkpoint.from_bytes(data, source=f"uploaded {name}"), kind=UPLOADED)
    except checkpoint.CheckpointError as error:
        return str(error)
    return None


def checkpoint_section() -> None:
    """Download the model the pages show; open a saved one (the Train page's Checkpoints tab)."""
    c1, c2 = st.columns(2)
    with c1:
        bundle = current_bundle()
        if bundle.task in PRETRAINED_TASKS:
            st.markdown(
                f"The pages show *{bundle.source}*, read from its own files: there is nothing to download here."
            )
        else:
            st.markdown(f"Download the model every page shows now: *{bundle.source}*.")
        st.download_button(
            "Download checkpoint (.safetensors)",
            data=lambda: checkpoint.to_bytes(bundle),
            file_name=f"encoder-{bundle.task or 'untrained'}.safetensors",
            mime="application/octet-stream",
            key="train_download",
            on_click="ignore",
            icon=":material/download:",
            disabled=bundle.task in PRETRAINED_TASKS,
        )
    with c2:
        upload = st.file_uploader(
            "Open a checkpoint saved by this app (.safetensors, or .npz from older versions)",
            type=["safetensors", "npz"],
            key="train_checkpoint_upload",
        )
    if upload is None:
        return
    seen = st.session_state.get(UPLOAD_KEY)
    if seen is None or seen[0] != upload.file_id:
        error = open_checkpoint(upload.getvalue(), upload.name)
        st.session_state[UPLOAD_KEY] = (upload.file_id, error)
        if error is None:
            st.rerun()  # the sidebar and every view now show the uploaded model
    error = st.session_state[UPLOAD_KEY][1]
    with c2:
        if error:
            st.error(error)
        else:
            st.success(f"Loaded {upload.name}: every page now shows this model.")
