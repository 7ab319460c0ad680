"""Tokens page (placeholder router target until the explorer pages land)."""

import streamlit as st

st.title("Transformer Encoder Explorer")
