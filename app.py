"""Transformer Encoder Explorer: the Streamlit entry point, a router and nothing more.

Every page draws the shared sidebar itself (``pages.common.sidebar``): Streamlit forgets widgets of the
entry script on reruns under AppTest, and a per-page call keeps the pages self-contained.
"""

import streamlit as st

from pages.common.resources import training_pool
from pages.common.session import note_page

st.set_page_config(page_title="Transformer Encoder Explorer", page_icon="🔍", layout="wide")

pages = [
    st.Page("pages/tokens.py", title="Tokens", icon=":material/text_fields:", default=True),
    st.Page("pages/fill_mask.py", title="Fill mask", icon=":material/edit_note:", url_path="fill_mask"),
    st.Page("pages/embeddings.py", title="Embeddings & positions", icon=":material/explore:", url_path="embeddings"),
    st.Page("pages/attention.py", title="Attention", icon=":material/visibility:", url_path="attention"),
    st.Page("pages/step_through.py", title="Step through", icon=":material/stairs:", url_path="step_through"),
    st.Page("pages/interpret.py", title="Interpret", icon=":material/psychology:", url_path="interpret"),
    st.Page(
        "pages/layernorm.py", title="Layer norm & residual stream", icon=":material/straighten:", url_path="layernorm"
    ),
    st.Page("pages/model.py", title="Model", icon=":material/account_tree:", url_path="model"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page("pages/train.py", title="Train", icon="🏋️"),
]
# Once per server, by the first page anyone opens: starts the training workers (a few ms; they import JAX
# and compile the default setup in their own processes), so a first Play finds them warm.
training_pool()
page = st.navigation(pages)
note_page(page.title)
page.run()
