"""A BERT WordPiece vocabulary, offering the interface the app uses on a ``explorer.text.vocab.Vocab``.

Our own models read a closed subset of a tiktoken encoding; a pretrained BERT-style model reads the
WordPiece vocabulary it was trained with (``bert-base-uncased``: 30,522 entries, lower-cased, accents
stripped, ``##`` marking a piece that continues a word). WordPiece ids *are* the model's embedding rows,
so ``to_model_ids`` is the identity, and a character the vocabulary lacks becomes ``[UNK]`` (the
vocabulary is not closed).

Tokenization is the ``tokenizers`` library's own, from the model's ``tokenizer.json``, with the app's
conventions on top: ``[CLS]`` and ``[SEP]`` are added here rather than by the file's template (so that
truncation keeps them), ``[MASK]`` typed in a text is the mask token only when asked, and the other
special-token strings (``[CLS]`` typed by a user) are read as plain text, as ``explorer.text.tokenizer`` does
for ``<|endoftext|>``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from explorer.text.tokenizer import MASK_TEXT, Tokenized, bounded_text

WORDPIECE_ENCODING = "bert-base-uncased WordPiece"
CLS_TEXT, SEP_TEXT, PAD_TEXT, UNK_TEXT = "[CLS]", "[SEP]", "[PAD]", "[UNK]"


class WordPieceTokenizer:
    """Text to WordPiece ids with ``[CLS]`` and ``[SEP]``, as ``Tokenized`` (see ``encode``).

    Attributes:
      name: the vocabulary's display name; ``explorer.pipeline`` checks it against ``vocab.encoding``.
      notice: always None (``explorer.text.tokenizer.Tokenizer`` uses it for an offline fallback; here the file
        either loads or the vocabulary cannot be built).
    """

    notice: str | None = None

    def __init__(self, tokenizer_file: str | Path, name: str = WORDPIECE_ENCODING):
        from tokenizers import Tokenizer as HFTokenizer

        path = Path(tokenizer_file)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"Cannot read the WordPiece tokenizer file {path} ({error}).") from error
        if not isinstance(data, dict) or data.get("model", {}).get("type") != "WordPiece":
            raise ValueError(f"{path} does not describe a WordPiece tokenizer.")
        # Added tokens are matched in the raw text before normalisation, so a user typing "[CLS]" would
        # get the special token. Without them the same ids still exist (they are WordPiece entries too),
        # but typed special-token strings are ordinary text; "[MASK]" is handled in ``encode``.
        data["added_tokens"] = []
        self._hf = HFTokenizer.from_str(json.dumps(data))
        # The file pads every text to 128 tokens and truncates at 128; we truncate ourselves, keeping
        # [CLS] and [SEP], and report the cut.
        self._hf.no_padding()
        self._hf.no_truncation()
        self.name = name
        self.size = self._hf.get_vocab_size()
        specials = {}
        for text in (CLS_TEXT, SEP_TEXT, PAD_TEXT, UNK_TEXT, MASK_TEXT):
            token_id = self._hf.token_to_id(text)
            if token_id is None:
                raise ValueError(
                    f"The WordPiece vocabulary in {path} has no {text} token; it is not a BERT vocabulary."
                )
            specials[text] = token_id
        self.cls_id, self.sep_id, self.pad_id = specials[CLS_TEXT], specials[SEP_TEXT], specials[PAD_TEXT]
        self.unk_id, self.mask_id = specials[UNK_TEXT], specials[MASK_TEXT]

    def _encode_plain(self, text: str, start: int) -> list[tuple[int, str, int, int]]:
        """``(id, piece, char_start, char_end)`` of every piece of ``text``, offsets shifted by ``start``."""
        encoding = self._hf.encode(text, add_special_tokens=False)
        return [
            (token_id, piece, start + begin, start + end)
            for token_id, piece, (begin, end) in zip(encoding.ids, encoding.tokens, encoding.offsets, strict=True)
        ]

    def encode(self, text: str, max_tokens: int, mask: bool = True) -> Tokenized:
        """Encodes ``text`` as ``[CLS] pieces… [SEP]``.

        Args:
          text: any string; lone surrogates are replaced rather than raising.
          max_tokens: keep at most this many tokens, ``[CLS]`` and ``[SEP]`` included (BERT: 512); a longer
            text keeps its first ``max_tokens - 2`` pieces and ends in ``[SEP]``.
          mask: read ``[MASK]`` in the text as the mask token, not as the characters ``[``, ``mask``, ``]``.

        Returns a ``Tokenized`` whose ids are WordPiece ids (the model's rows, ``[MASK]`` included), pieces
        the WordPiece strings (``##ing``), and byte counts the UTF-8 length of the text each piece covers,
        with the spaces before it (0 for ``[CLS]``, ``[SEP]``): they add up to the text's bytes, bar any
        trailing spaces and a cut. A text with no pieces at all (empty, or only spaces) gives no ids,
        not a bare ``[CLS] [SEP]``, so that callers' empty-text check applies.
        """
        if max_tokens < 2:
            raise ValueError(f"max_tokens must be at least 2 ([CLS] and [SEP]), got {max_tokens}.")
        text, chars_cut = bounded_text(text, max_tokens)
        segments = text.split(MASK_TEXT) if mask else [text]
        pieces: list[tuple[int, str, int, int]] = []
        start = 0
        for i, segment in enumerate(segments):
            if i:
                pieces.append((self.mask_id, MASK_TEXT, start - len(MASK_TEXT), start))
            pieces += self._encode_plain(segment, start)
            start += len(segment) + len(MASK_TEXT)
        if not pieces:
            return Tokenized(ids=(), pieces=(), byte_counts=(), total_tokens=0, truncated=False, chars_cut=chars_cut)
        kept = pieces[: max_tokens - 2]
        byte_counts, covered = [], 0
        for _, _, _, end in kept:
            # Each piece counts the text from the end of the one before, the spaces before it included (as
            # tiktoken's " door" does), so the counts tile the text and a running sum is a byte offset
            # (explorer.tagged_sentences finds each token's word that way). Normalisation can make two
            # pieces of one character: its bytes are counted once.
            byte_counts.append(len(text[covered:end].encode("utf-8")) if end > covered else 0)
            covered = max(covered, end)
        return Tokenized(
            ids=(self.cls_id, *(p[0] for p in kept), self.sep_id),
            pieces=(CLS_TEXT, *(p[1] for p in kept), SEP_TEXT),
            byte_counts=(0, *byte_counts, 0),
            total_tokens=len(pieces) + 2,
            truncated=len(pieces) + 2 > max_tokens,
            chars_cut=chars_cut,
        )

    def piece(self, token_id: int) -> str:
        """The WordPiece string of one id (``"##ing"``, ``"[CLS]"``)."""
        piece = self._hf.id_to_token(int(token_id))
        if piece is None:
            raise ValueError(f"Token id {token_id} is not in the {self.name} vocabulary (0..{self.size - 1}).")
        return piece

    def decode(self, ids: Sequence[int]) -> str:
        """The text of some ids, ``##`` pieces joined to their word; ``[CLS]``, ``[SEP]``, ``[PAD]`` left out.

        WordPiece loses case, accents and some spacing, so this is a reading of the ids, not the input text.
        """
        dropped = {self.cls_id, self.sep_id, self.pad_id}
        return self._hf.decode([int(i) for i in ids if int(i) not in dropped], skip_special_tokens=False)


@functools.lru_cache(maxsize=4)
def _load_tokenizer(tokenizer_file: str, name: str) -> WordPieceTokenizer:
    return WordPieceTokenizer(tokenizer_file, name)


@dataclass(frozen=True)
class WordPieceVocab:
    """The vocabulary of a pretrained BERT-style model, with ``Vocab``'s interface.

    Attributes:
      tokenizer_file: the model's ``tokenizer.json``.
      encoding: a display name; also the ``name`` of its tokenizer.
      closed: False: a character outside the vocabulary is ``[UNK]``.
      kind, mask_text, special_texts: what the views say about its tokens (``explorer.model.describe``).
    """

    tokenizer_file: str
    encoding: str = WORDPIECE_ENCODING
    closed: ClassVar[bool] = False
    # What the views say about the tokens (explorer.model.describe), as ``explorer.text.vocab.Vocab`` says it.
    kind: ClassVar[str] = "WordPiece"
    mask_text: ClassVar[str] = MASK_TEXT
    special_texts: ClassVar[tuple[str, ...]] = (CLS_TEXT, SEP_TEXT)
    _tokenizer: WordPieceTokenizer = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tokenizer", _load_tokenizer(str(self.tokenizer_file), self.encoding))

    @property
    def size(self) -> int:
        return self._tokenizer.size

    def __len__(self) -> int:
        return self.size

    @property
    def mask_id(self) -> int:
        return self._tokenizer.mask_id

    @property
    def unk_id(self) -> int:
        return self._tokenizer.unk_id

    def tokenizer(self) -> WordPieceTokenizer:
        """The tokenizer that makes this model's tokens; its ids are model ids."""
        return self._tokenizer

    def to_model_ids(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(model_ids [T] int32, unknown [T] bool)``: WordPiece ids are the model's rows already."""
        model_ids = np.asarray(ids, np.int32).reshape(-1)  # [T]
        if model_ids.size and (model_ids.min() < 0 or model_ids.max() >= self.size):
            raise ValueError(
                f"WordPiece ids must be in 0..{self.size - 1}; got {int(model_ids.min())}..{int(model_ids.max())} "
                f"(ids of another tokenizer?)."
            )
        return model_ids, model_ids == self.unk_id

    def token_text(self, model_id: int) -> str:
        """The text of one model row, for a prediction or an axis: the WordPiece string."""
        return self._tokenizer.piece(model_id)
