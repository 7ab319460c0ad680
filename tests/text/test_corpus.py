"""The bundled agreement grammar and its closed vocabulary (which the toy tasks borrow)."""

from __future__ import annotations

import pytest

from explorer.text.corpus import TOY_SYMBOLS, corpus_text, generate_sentences
from explorer.text.texts import GRAMMAR_VOCAB_SIZE, vocab_for
from explorer.text.tokenizer import Tokenizer
from explorer.text.vocab import MIN_CLOSED_SIZE
from explorer.training.tasks import toy_source


def test_grammar_is_deterministic_and_varied():
    first, again, other = generate_sentences(200, 0), generate_sentences(200, 0), generate_sentences(200, 1)
    assert first == again
    assert first != other
    assert len(set(first)) > 150  # not a handful of sentences repeated
    text = " ".join(first)
    # The long-range links the grammar exists for: pronouns, agreement across an attractor/relative clause.
    assert " She " in text or " He " in text
    assert " that the " in text


@pytest.mark.parametrize("size", [MIN_CLOSED_SIZE, 512, 1000])
def test_grammar_vocab_has_exactly_the_asked_size_and_the_toy_symbols(size):
    vocab = vocab_for("grammar", size)
    assert vocab.size == size and vocab.closed
    assert len(toy_source(vocab, len(TOY_SYMBOLS))) == len(TOY_SYMBOLS)


def _model_tokens(text: str, vocab) -> list[str]:
    return list(vocab.tokenizer().encode(text, 512).pieces)


@pytest.mark.parametrize(
    "text",
    [
        "The dogs near the table run.",
        "Mary met John. She gave him a book.",
        "The keys that the girl found are in the house.",
        "He lost his key.\nThere are three apples in the garden.",
    ],
)
def test_typed_grammar_sentences_are_whole_words_to_the_grammar_vocabulary(text):
    # A typed text starts with no space before its first word: "The" is another token than " The". The
    # grammar's vocabulary knows both forms, so its sentences reach a grammar model as whole words.
    assert _model_tokens(text, vocab_for("grammar", GRAMMAR_VOCAB_SIZE)) == list(Tokenizer().encode(text, 512).pieces)


def test_sentence_starts_occur_with_and_without_a_space():
    text = corpus_text()
    assert text == corpus_text.__wrapped__()  # deterministic, not just cached
    assert "\nThe " in text and ". The " in text
    assert "\nShe " in text and ". She " in text  # also inside a two-sentence item
    # Every sentence of the grammar, typed on its own, is whole words to the default-size vocabulary.
    vocab = vocab_for("grammar", GRAMMAR_VOCAB_SIZE)
    base = Tokenizer()
    for sentence in generate_sentences(300, seed=7):
        assert _model_tokens(sentence, vocab) == list(base.encode(sentence, 512).pieces), sentence


def test_grammar_vocab_too_small_says_what_is_needed():
    with pytest.raises(ValueError, match="at least"):
        vocab_for("grammar", 10)
