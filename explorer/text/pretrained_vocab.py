"""A pretrained model's own vocabulary (WordPiece or byte-level BPE), with the interface the app uses on a
``explorer.text.vocab.Vocab``.

Our own models read a closed subset of a tiktoken encoding; a pretrained BERT-family model reads the
vocabulary it was trained with: WordPiece for BERT, DistilBERT and ELECTRA (``bert-base-uncased``: 30,522
entries, lower-cased, accents stripped, ``##`` marking a piece that continues a word) or byte-level BPE for
RoBERTa (50,265 entries, ``Ġ`` marking a leading space). Its ids *are* the model's embedding rows, so
``to_model_ids`` is the identity; a WordPiece vocabulary is not closed (a character it lacks is its unknown
token), a byte-level one reaches every text.

Tokenization is the ``tokenizers`` library's own, from the model's ``tokenizer.json``, or built as Hugging
Face builds it from ``vocab.txt`` (WordPiece) or ``vocab.json`` + ``merges.txt`` (BPE) when a folder has
only those. The app's conventions go on top: the model's opening and closing tokens (``[CLS]``/``[SEP]``,
``<s>``/``</s>``) are added here rather than by the file's template (so that truncation keeps them);
``[MASK]`` typed in a text, or the model's own mask token (``<mask>``), is the mask token; other
special-token strings typed by a user are read as plain text, as ``explorer.text.tokenizer`` does for
``<|endoftext|>``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from explorer.text.tokenizer import MASK_TEXT, Tokenized, bounded_text, token_text

WORDPIECE, BYTE_LEVEL_BPE = "WordPiece", "byte-level BPE"
KINDS = (WORDPIECE, BYTE_LEVEL_BPE)
TOKENIZER_FILE, TOKENIZER_CONFIG = "tokenizer.json", "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
WORDPIECE_FILES = ("vocab.txt",)
BPE_FILES = ("vocab.json", "merges.txt")
MAX_TOKENIZER_BYTES = 64 * 1024 * 1024  # bert-base's tokenizer.json is 0.7 MB, roberta-base's 1.4 MB

# The special tokens each kind's Hugging Face tokenizer uses unless its tokenizer_config.json names others.
DEFAULT_SPECIALS = {
    WORDPIECE: {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "unk": "[UNK]", "mask": "[MASK]"},
    BYTE_LEVEL_BPE: {"cls": "<s>", "sep": "</s>", "pad": "<pad>", "unk": "<unk>", "mask": "<mask>"},
}
# RoBERTa's tokenizer makes its mask token take the spaces before it ("on the <mask>" has no " " token).
DEFAULT_MASK_LSTRIP = {WORDPIECE: False, BYTE_LEVEL_BPE: True}


class TokenizerUnavailable(ValueError):
    """A folder has no tokenizer we can read; the message names what is missing or wrong."""


@functools.cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet backwards: each of the 256 printable stand-ins (``Ġ`` for a space) to its byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}


def _read_json(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_TOKENIZER_BYTES:
            raise TokenizerUnavailable(
                f"{path} is larger than {MAX_TOKENIZER_BYTES // 2**20} MB: not a tokenizer file."
            )
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        if isinstance(error, TokenizerUnavailable):
            raise
        raise TokenizerUnavailable(f"Cannot read {path} ({error}).") from error


def _token_content(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or ``{"content": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def tokenizer_files(folder: Path) -> tuple[str, ...] | None:
    """The files the tokenizer of ``folder`` is built from, in order of preference, or None if it has none."""
    for names in ((TOKENIZER_FILE,), WORDPIECE_FILES, BPE_FILES):
        if all((folder / name).is_file() for name in names):
            return names
    return None


def missing_tokenizer_message(folder: Path | str) -> str:
    return (
        f"{folder} has no tokenizer: it needs {TOKENIZER_FILE}, or {WORDPIECE_FILES[0]} (WordPiece), or "
        f"{' + '.join(BPE_FILES)} (byte-level BPE), from the same model."
    )


class PretrainedTokenizer:
    """Text to a pretrained model's ids, its opening and closing tokens around them, as ``Tokenized``.

    Attributes:
      name: the vocabulary's display name; ``explorer.pipeline`` checks it against ``vocab.encoding``.
      kind: ``WORDPIECE`` or ``BYTE_LEVEL_BPE``.
      mask_text: the model's own mask token (``[MASK]``, ``<mask>``).
      special_texts: its opening and closing tokens (``("[CLS]", "[SEP]")``, ``("<s>", "</s>")``).
      notice: always None (``explorer.text.tokenizer.Tokenizer`` uses it for an offline fallback; here the files
        either load or the vocabulary cannot be built).
    """

    notice: str | None = None

    def __init__(self, folder: str | Path, name: str, rows: int | None = None):
        from tokenizers import Tokenizer as HFTokenizer

        folder = Path(folder)
        files = tokenizer_files(folder)
        if files is None:
            raise TokenizerUnavailable(missing_tokenizer_message(folder))
        settings = {}
        for extra in (SPECIAL_TOKENS_MAP, TOKENIZER_CONFIG):  # the config wins, as in transformers
            if (folder / extra).is_file():
                data = _read_json(folder / extra)
                settings.update(data if isinstance(data, dict) else {})
        added: dict[str, dict] = {}
        if files == (TOKENIZER_FILE,):
            data = _read_json(folder / TOKENIZER_FILE)
            if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
                raise TokenizerUnavailable(f"{folder / TOKENIZER_FILE} is not a tokenizers file.")
            kind = self._kind(data, folder / TOKENIZER_FILE)
            added = {t["content"]: t for t in data.get("added_tokens") or [] if isinstance(t, dict) and "content" in t}
            # Added tokens are matched in the raw text before normalisation, so a user typing "[CLS]" would
            # get the special token. Without them the same ids still exist (they are vocabulary entries
            # too), but typed special-token strings are ordinary text; the mask is handled in ``encode``.
            data["added_tokens"] = []
            try:
                self._hf = HFTokenizer.from_str(json.dumps(data))
            except Exception as error:  # noqa: BLE001 - tokenizers raises its own exception type
                raise TokenizerUnavailable(
                    f"{folder / TOKENIZER_FILE} cannot be read by tokenizers ({error})."
                ) from error
        elif files == WORDPIECE_FILES:
            kind = WORDPIECE
            self._hf = self._wordpiece(folder / WORDPIECE_FILES[0], settings)
        else:
            kind = BYTE_LEVEL_BPE
            self._hf = self._byte_level_bpe(folder, settings)
        # The files may pad and truncate every text to a fixed length; we truncate ourselves, keeping the
        # opening and closing tokens, and report the cut.
        self._hf.no_padding()
        self._hf.no_truncation()
        self.name, self.kind, self.files = name, kind, files
        self.size = self._hf.get_vocab_size()
        self.rows = self.size if rows is None else rows
        if self.size > self.rows:
            raise TokenizerUnavailable(
                f"The tokenizer in {folder} has {self.size} tokens but the model has only {self.rows} embedding "
                "rows: they do not belong together."
            )
        texts = {
            role: _token_content(settings.get(f"{role}_token")) or default
            for role, default in DEFAULT_SPECIALS[kind].items()
        }
        ids = {}
        for role, text in texts.items():
            token_id = self._hf.token_to_id(text)
            if token_id is None and text in added:
                token_id = added[text].get("id")
            if token_id is None or not 0 <= token_id < self.rows:
                if role in ("pad", "unk"):  # never produced by a byte-level vocabulary; not needed here
                    ids[role] = -1
                    continue
                raise TokenizerUnavailable(
                    f"The vocabulary in {folder} has no {text} token; this app needs the model's opening, closing and "
                    "mask tokens (a BERT-family vocabulary has them)."
                )
            ids[role] = int(token_id)
        self.cls_id, self.sep_id, self.pad_id = ids["cls"], ids["sep"], ids["pad"]
        self.unk_id, self.mask_id = ids["unk"], ids["mask"]
        self.mask_text = texts["mask"]
        self.special_texts = (texts["cls"], texts["sep"])
        self._extra_text = {int(t["id"]): content for content, t in added.items() if isinstance(t.get("id"), int)}
        self._mask_lstrip = bool(added.get(self.mask_text, {}).get("lstrip", DEFAULT_MASK_LSTRIP[kind]))
        typed = sorted({MASK_TEXT, self.mask_text}, key=len, reverse=True)
        self._mask_pattern = re.compile("|".join(re.escape(t) for t in typed))

    @staticmethod
    def _kind(data: dict, path: Path) -> str:
        model = data["model"].get("type")
        if model == "WordPiece":
            return WORDPIECE
        pre = data.get("pre_tokenizer") or {}
        parts = pre.get("pretokenizers", [pre]) if isinstance(pre, dict) else []
        if model == "BPE" and any(isinstance(p, dict) and p.get("type") == "ByteLevel" for p in parts):
            return BYTE_LEVEL_BPE
        raise TokenizerUnavailable(
            f"{path} describes a {model} tokenizer; this app reads {' and '.join(KINDS)} tokenizers (the BERT family's)."
        )

    @staticmethod
    def _wordpiece(path: Path, settings: dict):
        """The tokenizer ``transformers`` builds from a ``vocab.txt`` (its BertTokenizerFast converter)."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, normalizers, pre_tokenizers

        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise TokenizerUnavailable(f"Cannot read {path} ({error}).") from error
        vocab = {line: index for index, line in enumerate(lines)}
        unk = _token_content(settings.get("unk_token")) or DEFAULT_SPECIALS[WORDPIECE]["unk"]
        tokenizer = HFTokenizer(models.WordPiece(vocab, unk_token=unk, max_input_chars_per_word=100))
        lowercase = bool(settings.get("do_lower_case", True))  # BertTokenizer's default
        tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True,
            handle_chinese_chars=bool(settings.get("tokenize_chinese_chars", True)),
            strip_accents=settings.get("strip_accents") if isinstance(settings.get("strip_accents"), bool) else None,
            lowercase=lowercase,
        )
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece(prefix="##")
        return tokenizer

    @staticmethod
    def _byte_level_bpe(folder: Path, settings: dict):
        """The tokenizer ``transformers`` builds from ``vocab.json`` + ``merges.txt`` (RobertaTokenizerFast)."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers

        try:
            model = models.BPE.from_file(str(folder / BPE_FILES[0]), str(folder / BPE_FILES[1]))
        except Exception as error:  # noqa: BLE001 - tokenizers raises its own exception type
            raise TokenizerUnavailable(f"Cannot read {' + '.join(BPE_FILES)} in {folder} ({error}).") from error
        tokenizer = HFTokenizer(model)
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(
            add_prefix_space=bool(settings.get("add_prefix_space", False))
        )
        tokenizer.decoder = decoders.ByteLevel()
        return tokenizer

    def piece_text(self, piece: str) -> str:
        """Readable text of one piece: a WordPiece string as it is (``##ing``), a byte-level one as the text
        it stands for (``Ġdoor`` -> `` door``, bytes of a split character as ``<0xF0>``)."""
        if self.kind != BYTE_LEVEL_BPE:
            return piece
        decoder = _byte_decoder()
        if not all(char in decoder for char in piece):
            return piece  # a special token such as <s>, written in plain characters
        return token_text(bytes(decoder[char] for char in piece))

    def _encode_plain(self, text: str, start: int) -> list[tuple[int, str, int, int]]:
        """``(id, piece, char_start, char_end)`` of every piece of ``text``, offsets shifted by ``start``."""
        encoding = self._hf.encode(text, add_special_tokens=False)
        return [
            (token_id, self.piece_text(piece), start + begin, start + end)
            for token_id, piece, (begin, end) in zip(encoding.ids, encoding.tokens, encoding.offsets, strict=True)
        ]

    def encode(self, text: str, max_tokens: int, mask: bool = True) -> Tokenized:
        """Encodes ``text`` as ``opening pieces… closing`` (``[CLS] … [SEP]``, ``<s> … </s>``).

        Args:
          text: any string; lone surrogates are replaced rather than raising.
          max_tokens: keep at most this many tokens, the opening and closing ones included (BERT: 512); a
            longer text keeps its first ``max_tokens - 2`` pieces and ends in the closing token.
          mask: read ``[MASK]`` (and the model's own mask token) in the text as the mask token, not as
            characters.

        Returns a ``Tokenized`` whose ids are the model's ids (its rows, the mask included), pieces their
        readable text (``##ing``, `` door``), and byte counts the UTF-8 length of the text each piece covers,
        the whitespace before it included (0 for the opening and closing tokens): the counts add up to the
        text up to the end of the last piece, so they place every piece in the text. A text with no pieces at
        all (empty, or only spaces) gives no ids, not a bare opening and closing pair, so that callers'
        empty-text check applies.
        """
        if max_tokens < 2:
            raise ValueError(f"max_tokens must be at least 2 ({' and '.join(self.special_texts)}), got {max_tokens}.")
        text, chars_cut = bounded_text(text, max_tokens)
        pieces: list[tuple[int, str, int, int]] = []
        start = 0
        for found in self._mask_pattern.finditer(text) if mask else ():
            segment = text[start : found.start()]
            if self._mask_lstrip:  # the mask token takes the spaces before it (RoBERTa)
                segment = segment.rstrip()
            pieces += self._encode_plain(segment, start)
            pieces.append((self.mask_id, self.mask_text, found.start(), found.end()))
            start = found.end()
        pieces += self._encode_plain(text[start:], start)
        if not pieces:
            return Tokenized(ids=(), pieces=(), byte_counts=(), total_tokens=0, truncated=False, chars_cut=chars_cut)
        kept = pieces[: max_tokens - 2]
        byte_counts, covered = [], 0
        for _, _, _, end in kept:
            # Each piece covers the text from where the last one ended: the whitespace before it included,
            # and a character that normalisation made into two pieces counted once.
            byte_counts.append(len(text[covered:end].encode("utf-8")) if end > covered else 0)
            covered = max(covered, end)
        opening, closing = self.special_texts
        return Tokenized(
            ids=(self.cls_id, *(p[0] for p in kept), self.sep_id),
            pieces=(opening, *(p[1] for p in kept), closing),
            byte_counts=(0, *byte_counts, 0),
            total_tokens=len(pieces) + 2,
            truncated=len(pieces) + 2 > max_tokens,
            chars_cut=chars_cut,
        )

    def piece(self, token_id: int) -> str:
        """The readable text of one id (``"##ing"``, ``" door"``, ``"[CLS]"``)."""
        token_id = int(token_id)
        piece = self._hf.id_to_token(token_id)
        if piece is not None:
            return self.piece_text(piece)
        if token_id in self._extra_text:
            return self._extra_text[token_id]
        if 0 <= token_id < self.rows:
            return f"<row {token_id}>"  # an embedding row the tokenizer never produces
        raise ValueError(f"Token id {token_id} is not in the {self.name} vocabulary (0..{self.rows - 1}).")

    def decode(self, ids: Sequence[int]) -> str:
        """The text of some ids, pieces joined into words; the opening, closing and padding tokens left out.

        WordPiece loses case, accents and some spacing, so this is a reading of the ids, not the input text.
        """
        dropped = {self.cls_id, self.sep_id, self.pad_id}
        return self._hf.decode([int(i) for i in ids if int(i) not in dropped], skip_special_tokens=False)


@functools.lru_cache(maxsize=8)
def _load_tokenizer(folder: str, name: str, rows: int | None) -> PretrainedTokenizer:
    return PretrainedTokenizer(folder, name, rows)


@dataclass(frozen=True)
class PretrainedVocab:
    """The vocabulary of a pretrained BERT-family model, with ``Vocab``'s interface.

    Attributes:
      folder: the model's folder (its tokenizer files, see ``tokenizer_files``).
      encoding: a display name (``"bert-base-uncased WordPiece"``); also the ``name`` of its tokenizer.
      rows: the model's embedding rows (``ModelConfig.vocab_size``); None: the tokenizer's size.
      closed: whether every text reaches the vocabulary without an unknown token (byte-level BPE does).
      kind, mask_text, special_texts: what the views say about the tokens (see ``PretrainedTokenizer``).
    """

    folder: str
    encoding: str
    rows: int | None = None
    _tokenizer: PretrainedTokenizer = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tokenizer", _load_tokenizer(str(self.folder), self.encoding, self.rows))

    @property
    def closed(self) -> bool:
        return self._tokenizer.kind == BYTE_LEVEL_BPE

    @property
    def kind(self) -> str:
        return self._tokenizer.kind

    @property
    def mask_text(self) -> str:
        return self._tokenizer.mask_text

    @property
    def special_texts(self) -> tuple[str, str]:
        return self._tokenizer.special_texts

    @property
    def size(self) -> int:
        return self._tokenizer.rows

    def __len__(self) -> int:
        return self.size

    @property
    def mask_id(self) -> int:
        return self._tokenizer.mask_id

    @property
    def unk_id(self) -> int:
        return self._tokenizer.unk_id

    def tokenizer(self) -> PretrainedTokenizer:
        """The tokenizer that makes this model's tokens; its ids are model ids."""
        return self._tokenizer

    def to_model_ids(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(model_ids [T] int32, unknown [T] bool)``: the tokenizer's ids are the model's rows already."""
        model_ids = np.asarray(ids, np.int32).reshape(-1)  # [T]
        if model_ids.size and (model_ids.min() < 0 or model_ids.max() >= self.size):
            raise ValueError(
                f"Token ids must be in 0..{self.size - 1}; got {int(model_ids.min())}..{int(model_ids.max())} "
                f"(ids of another tokenizer?)."
            )
        return model_ids, model_ids == self.unk_id

    def token_text(self, model_id: int) -> str:
        """The text of one model row, for a prediction or an axis (``##ing``, `` door``)."""
        return self._tokenizer.piece(model_id)
