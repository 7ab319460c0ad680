"""Tests of explorer/text: tokenizers, vocabularies, corpora, training texts."""
