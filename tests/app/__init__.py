"""Tests of the app: every page under AppTest, the Train page over time, and the app in headless Chromium."""
