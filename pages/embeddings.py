"""Embeddings & positions page: what enters layer 1 (token rows + positional encoding) and how it looks.

The views live in ``pages.common.embedding_views``; the open view and its choices are kept in the link.
"""

import streamlit as st

from explorer.model import describe
from pages.common import TEXT, kept, one_of, open_page, window_control
from pages.common.embedding_views import VIEWS, EmbeddingView

sentence = open_page("Embeddings & positions", lambda bundle: describe.embedding_caption(bundle.config))
out = sentence.run()
window = window_control(len(sentence), "embeddings_window")
names = list(VIEWS)
kept("embeddings_view", names[0], "view", TEXT, fix=one_of(names))
view = st.segmented_control("View", names, key="embeddings_view", required=True)
VIEWS[view](EmbeddingView(sentence, out, window))
