"""Transformer Encoder Explorer: the Streamlit entry point, a router and nothing more."""

import streamlit as st

st.set_page_config(page_title="Transformer Encoder Explorer", page_icon="🔍", layout="wide")

pages = [
    st.Page("pages/tokens.py", title="Tokens", icon="🔤", default=True),
]
st.navigation(pages).run()
