"""Tokenization: offline encodings, round trips on hard text, truncation, and the compact vocabulary."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from explorer.text.tokenizer import (
    DEFAULT_ENCODING,
    Tokenizer,
    available_encodings,
    display_text,
    load_encoding,
    token_text,
)
from explorer.text.vocab import MASK, NUM_SPECIAL, PAD, UNK, Vocab

HARD_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Emoji: 🙂👩‍👩‍👧 and flags 🇫🇷",
    "中文分词很难。日本語もね。한국어",
    "Before <|endoftext|> after <|fim_prefix|> and <|endofprompt|>",
    "שלום עולם مرحبا",
    "tabs\tand\nnewlines\r\nand \x00 control \x1b chars",
    "   ",
]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(DEFAULT_ENCODING)


@pytest.mark.parametrize("text", HARD_TEXTS)
def test_round_trip(tokenizer, text):
    tokens = tokenizer.encode(text, max_tokens=512)
    assert not tokens.truncated
    assert tokenizer.decode(list(tokens.ids)) == text
    assert len(tokens.ids) == len(tokens.pieces) == len(tokens.byte_counts)
    assert sum(tokens.byte_counts) == len(text.encode("utf-8"))


def test_special_token_strings_are_plain_text(tokenizer):
    tokens = tokenizer.encode("a <|endoftext|> b", max_tokens=64)
    eot = tokenizer.encoding.eot_token
    assert eot not in tokens.ids
    assert "".join(tokens.pieces) == "a <|endoftext|> b"


def test_partial_utf8_shown_as_bytes():
    assert token_text("é".encode()) == "é"
    assert token_text("世".encode()[:2]) == "<0xE4><0xB8>"
    assert token_text(b"a" + "世".encode()[:1]) == "a<0xE4>"
    assert display_text(" a\n\t\x01") == "␣a↵⇥<0x01>"


def test_truncation_is_reported(tokenizer):
    tokens = tokenizer.encode("word" + " word" * 99, max_tokens=10)
    assert len(tokens) == 10 and tokens.truncated and tokens.total_tokens == 100
    assert "100 tokens" in tokens.truncation_message()
    assert tokenizer.encode("short", max_tokens=10).truncation_message() is None


def test_huge_text_is_cut_before_encoding(tokenizer):
    tokens = tokenizer.encode("x" * 100_000 + "🙂" * 5_000, max_tokens=512)
    assert len(tokens) == 512 and tokens.chars_cut and tokens.truncated
    assert "at least" in tokens.truncation_message()


def test_empty_text(tokenizer):
    tokens = tokenizer.encode("", max_tokens=8)
    assert len(tokens) == 0 and not tokens.truncated


def test_lone_surrogate_does_not_raise(tokenizer):
    tokens = tokenizer.encode("bad \ud800 char", max_tokens=16)
    assert len(tokens) > 0


def test_unknown_encoding_is_explained():
    with pytest.raises(ValueError, match="Unknown encoding"):
        load_encoding("nope")
    assert available_encodings()[0] == DEFAULT_ENCODING


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_bundled_encodings_match_reference_ids(name):
    # Known ids from the official vocabularies: a wrong or corrupt file would give other numbers.
    expected = {"cl100k_base": [9906, 1917], "o200k_base": [13225, 2375]}[name]
    encoding, notice = load_encoding(name)
    assert notice is None
    assert encoding.encode("Hello world") == expected


OFFLINE_SCRIPT = textwrap.dedent(
    """
    import socket, sys
    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    sys.path.insert(0, sys.argv[1])
    from explorer.text.tokenizer import Tokenizer
    default = Tokenizer("cl100k_base")
    assert default.notice is None, default.notice
    assert default.encode("Hello world", 8).ids == (9906, 1917)
    fallback = Tokenizer("r50k_base")
    assert fallback.name == "cl100k_base", fallback.name
    print(fallback.notice)
    """
)


def test_offline_encoding_works_without_network(tmp_path):
    from tests.conftest import ROOT

    root = str(ROOT)
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, root], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    notice = result.stdout.strip()
    assert "r50k_base" in notice and "cl100k_base" in notice and "instead" in notice
    assert notice.count(".") == 1  # one clear sentence


def test_an_open_vocabulary_of_an_old_checkpoint_maps_unknown_ids_visibly():
    vocab = Vocab("cl100k_base", (5, 6, 7))
    assert vocab.size == 6 and not vocab.closed
    model_ids, unknown = vocab.to_model_ids([7, 9, 5])
    assert list(model_ids) == [NUM_SPECIAL + 2, UNK, NUM_SPECIAL]
    assert list(unknown) == [False, True, False]
    assert vocab.to_tiktoken_id(NUM_SPECIAL + 1) == 6 and vocab.to_tiktoken_id(MASK) is None
    assert Vocab.from_dict(vocab.to_dict()) == vocab
    assert model_ids.dtype == np.int32 and PAD == 0


@pytest.mark.parametrize(
    "bad", [{"encoding": "x"}, {"encoding": 3, "tiktoken_ids": []}, {"encoding": "x", "tiktoken_ids": ["a"]}, []]
)
def test_vocab_from_bad_dict(bad):
    with pytest.raises(ValueError):
        Vocab.from_dict(bad)


def test_vocab_rejects_duplicates():
    with pytest.raises(ValueError, match="twice"):
        Vocab("cl100k_base", (4, 4))


def test_byte_counts_tile_the_text_with_masks(tokenizer):
    """A [MASK] takes the space before it (it stands for a whole token, " mat"), and counts it: the byte
    counts still add up to the text, so a running sum is a byte offset (the Tokens page compares cuts so)."""
    text = "The cat sat on the [MASK]. [MASK]x  [MASK]"
    tokens = tokenizer.encode(text, 100)
    assert sum(tokens.byte_counts) == len(text.encode())
    masks = [i for i, piece in enumerate(tokens.pieces) if piece == "[MASK]"]
    assert [tokens.byte_counts[i] for i in masks] == [7, 7, 7]  # " [MASK]", " [MASK]" and the second space's
    assert [tokens.ids[i] for i in masks] == [-1, -1, -1]
