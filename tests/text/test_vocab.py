"""Closed vocabularies: a subset of cl100k_base that is itself a tiktoken encoding, so nothing is unknown."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.model.config import ModelConfig
from explorer.text.texts import vocab_for
from explorer.text.tokenizer import Tokenizer, differences
from explorer.text.vocab import (
    MASK,
    MIN_CLOSED_SIZE,
    NUM_SPECIAL,
    UNK,
    Vocab,
    bpe_path,
    byte_token_ids,
    closed_vocab,
    unreachable_tokens,
)


@pytest.fixture(scope="module")
def base():
    return Tokenizer()


@pytest.fixture(scope="module")
def english_vocab():
    return vocab_for("english", ModelConfig().vocab_size)  # the default model's


def test_bpe_path_matches_tiktoken_on_whole_tokens(base):
    ranks = base.encoding._mergeable_ranks
    for word in (" pizza", " tomorrow", "ization", " the", "Hello"):
        (token_id,) = base.encoding.encode(word)
        path = bpe_path(word.encode(), ranks)
        assert path[-1] == word.encode()  # BPE over the full encoding reaches the token
        # every step is a token of the encoding, made in increasing rank order of its merges
        assert all(part in ranks for part in path)


def test_closed_vocab_has_bytes_frequent_tokens_and_their_ancestors(base):
    text = "the cat sat on the mat. the pizza was hot. " * 20
    ids = base.encoding.encode(text)
    vocab = closed_vocab("cl100k_base", ids, 300)
    assert vocab.size == 300 and vocab.closed
    assert set(byte_token_ids()) <= set(vocab.tiktoken_ids)
    assert set(ids) <= set(vocab.tiktoken_ids)  # few distinct tokens: all of them fit
    assert unreachable_tokens(vocab) == []
    # The same text and size always give the same vocabulary (a model must match its checkpoint).
    assert closed_vocab("cl100k_base", ids, 300) == vocab


def test_frequent_tokens_alone_are_not_closed_but_with_ancestors_they_are(base):
    (pizza,) = base.encoding.encode(" pizza")
    without_ancestors = Vocab("cl100k_base", tuple(sorted({*byte_token_ids(), pizza})), closed=False)
    assert unreachable_tokens(without_ancestors) == [pizza]  # BPE cannot get there from bytes
    vocab = closed_vocab("cl100k_base", [pizza], MIN_CLOSED_SIZE + 10)
    assert pizza in vocab.tiktoken_ids and unreachable_tokens(vocab) == []
    assert vocab.tokenizer().encode(" pizza", 10).pieces == (" pizza",)


def test_every_kept_token_is_reachable_in_the_english_vocabulary(english_vocab):
    assert english_vocab.closed and english_vocab.size == ModelConfig().vocab_size
    assert unreachable_tokens(english_vocab) == []
    # ... and tiktoken's own BPE over the subset produces each one from its bytes
    tokenizer = english_vocab.tokenizer()
    pieces = [english_vocab.token_text(i) for i in range(NUM_SPECIAL, english_vocab.size)]
    whole = [p for p in pieces if p.strip() and tokenizer.encode(p, 64, mask=False).pieces == (p,)]
    assert len(whole) > 0.95 * len(pieces)  # the rest are byte fragments or split by the regex, not by BPE


def test_closed_vocab_too_small_says_what_is_needed():
    with pytest.raises(ValueError, match=f"at least {MIN_CLOSED_SIZE}"):
        closed_vocab("cl100k_base", [1, 2, 3], 100)


TEXTS = [
    "My sister said that she would call me tomorrow.",
    "I ate pizza 🍕 with 日本語 and 中文, مرحبا بالعالم (RTL), עברית.",
    "Control \x00\x07\x1b characters\r\n\tand tabs",
    "A literal <|endoftext|> and <|fim_prefix|> are just text.",
    "👩‍👩‍👧‍👦 family emoji, flags 🇺🇦🇯🇵, skin tones 👍🏽",
    "",
    " ",
]


@pytest.mark.parametrize("text", TEXTS)
def test_any_text_round_trips_with_no_unknown_token(english_vocab, text):
    tokens = english_vocab.tokenizer().encode(text, 10_000, mask=False)
    model_ids, unknown = english_vocab.to_model_ids(tokens.ids)
    assert not unknown.any() and UNK not in model_ids
    assert Tokenizer().decode(list(tokens.ids)) == text
    assert sum(tokens.byte_counts) == len(text.encode())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200))
def test_random_unicode_round_trips_with_no_unknown_token(english_vocab, text):
    tokens = english_vocab.tokenizer().encode(text, 10_000, mask=False)
    assert not english_vocab.to_model_ids(tokens.ids)[1].any()
    assert Tokenizer().decode(list(tokens.ids)) == text


def test_mask_typed_in_the_text_is_the_mask_token_and_takes_the_space_before_it(english_vocab):
    tokens = english_vocab.tokenizer().encode("The cat sat on the [MASK].", 64)
    model_ids, _ = english_vocab.to_model_ids(tokens.ids)
    assert tokens.pieces[-2:] == ("[MASK]", ".") and tokens.pieces[-3] == " the"  # no lone " " token
    assert model_ids[-2] == MASK and tokens.mask_positions == [len(tokens) - 2]
    assert Tokenizer().decode(list(tokens.ids)) == "The cat sat on the[MASK]."
    # With mask=False the same characters are plain text
    assert "[MASK]" not in english_vocab.tokenizer().encode("[MASK]", 64, mask=False).pieces


def test_everyday_english_is_mostly_whole_words(english_vocab, base):
    sentence = "My sister said that she would call me tomorrow."
    assert english_vocab.tokenizer().encode(sentence, 64).pieces == base.encode(sentence, 64).pieces


def test_differences_pair_up_the_pieces_of_each_split(english_vocab, base):
    text = "We ate the quixotically flamboyant pizza."
    changed = differences(base.encode(text, 64), english_vocab.tokenizer().encode(text, 64))
    assert changed and all("".join(a) == "".join(b) for a, b in changed)


def test_closed_vocab_round_trips_through_its_dict_and_refuses_a_tampered_one(english_vocab):
    data = english_vocab.to_dict()
    assert Vocab.from_dict(data) == english_vocab
    tampered = dict(data, tiktoken_ids=[i for i in data["tiktoken_ids"] if i != max(data["tiktoken_ids"][300:400])])
    # removing an ancestor in the middle leaves some kept token unreachable
    ancestors = [i for i in data["tiktoken_ids"] if i > 255][:50]
    tampered = dict(data, tiktoken_ids=[i for i in data["tiktoken_ids"] if i not in ancestors])
    with pytest.raises(ValueError, match="cannot reach"):
        Vocab.from_dict(tampered)
    legacy = {"encoding": "cl100k_base", "tiktoken_ids": [5, 6, 7]}  # an old checkpoint's form
    assert not Vocab.from_dict(legacy).closed


def test_model_ids_are_dense_in_merge_order(english_vocab):
    assert list(english_vocab.tiktoken_ids) == sorted(english_vocab.tiktoken_ids)
    tokenizer = english_vocab.tokenizer()
    ids = tokenizer.encoding.encode(" the house")
    model_ids, _ = english_vocab.to_model_ids(tokenizer.encode(" the house", 8).ids)
    assert list(model_ids) == [i + NUM_SPECIAL for i in ids]
    assert np.all(model_ids < english_vocab.size)
