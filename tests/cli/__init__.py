"""Tests of explorer/cli: the command line's output and exit codes."""
