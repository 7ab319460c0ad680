"""The bundled training corpus: a small grammar whose sentences carry long-range links.

A masked-token model learns what its data rewards. Natural text of a size we could ship and train on in
a minute would teach mostly bigram statistics; this grammar is built so that predicting a masked word
*requires* looking far back, which is what attention is for and what the heatmaps can then show:

* subject-verb agreement across an attractor ("The dog near the tables *runs*") or a relative clause
  ("The keys that the girl found *are* ...");
* pronoun reference to a named person, within a sentence and across two ("Mary met John. *She* gave
  *him* a book.");
* possessives and number words that agree with a noun ("three *apples*", "John lost *his* key").

Sentences are separated by a space or a line break, chosen at random: in cl100k a word after a space is
another token than the same word at the start of a line or text (" The" vs "The"), and a person types the
first word of their text with no space before it. Both forms must be in the vocabulary *and* in the
training text, or the first word of every typed sentence would be [UNK].

Generation is deterministic in ``seed`` so the corpus, its vocabulary and the default checkpoint are
reproducible. The toy tasks' symbols (digits and capital letters) are single bytes, so every closed
vocabulary (``explorer.text.vocab``) holds them.
"""

from __future__ import annotations

import functools
import random

from explorer.text.tokenizer import DEFAULT_ENCODING, Tokenizer

# Sentences in the bundled corpus: ~20k sentences is ~300k tokens, enough that a small model cannot
# memorise it in a few thousand steps, small enough to generate and tokenize in well under a second.
CORPUS_SENTENCES = 20_000
CORPUS_SEED = 0
# Share of sentence boundaries that are a line break rather than a space. Half and half, so the model
# sees each form of a sentence-initial word about as often as the other.
NEWLINE_RATE = 0.5

# Symbols of the toy tasks (reverse, sort, copy). Each is a single tiktoken token; their order here is
# the order the sort task sorts by.
TOY_SYMBOLS = tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")

_MALE = ("John", "David", "Peter", "Tom", "James", "Paul", "Mark", "Sam", "Robert", "Henry")
_FEMALE = ("Mary", "Anna", "Sarah", "Emma", "Kate", "Lucy", "Jane", "Alice", "Laura", "Helen")
# (singular, plural) pairs: the agreement links need both forms.
_NOUNS = (
    ("dog", "dogs"),
    ("cat", "cats"),
    ("teacher", "teachers"),
    ("child", "children"),
    ("bird", "birds"),
    ("farmer", "farmers"),
    ("student", "students"),
    ("king", "kings"),
    ("doctor", "doctors"),
    ("girl", "girls"),
    ("boy", "boys"),
    ("horse", "horses"),
)
_OBJECTS = (
    ("book", "books"),
    ("key", "keys"),
    ("letter", "letters"),
    ("apple", "apples"),
    ("ball", "balls"),
    ("box", "boxes"),
    ("map", "maps"),
    ("coin", "coins"),
    ("cup", "cups"),
    ("hat", "hats"),
    ("flower", "flowers"),
    ("stone", "stones"),
)
# (singular, plural) things that only serve as attractors ("The dog near the tables runs").
_LANDMARKS = (("table", "tables"), ("tree", "trees"), ("door", "doors"), ("window", "windows"))
_PLACES = ("garden", "river", "market", "school", "house", "forest", "park", "village", "kitchen", "library")
# (singular, plural) present-tense intransitive verbs.
_VERBS = (
    ("runs", "run"),
    ("sleeps", "sleep"),
    ("sings", "sing"),
    ("waits", "wait"),
    ("laughs", "laugh"),
    ("walks", "walk"),
    ("eats", "eat"),
    ("plays", "play"),
)
# (singular, plural) present-tense transitive verbs.
_TRANSITIVE = (("sees", "see"), ("likes", "like"), ("finds", "find"), ("helps", "help"), ("follows", "follow"))
_PAST = ("found", "liked", "saw", "kept", "wanted", "lost", "painted", "carried")
_ADJECTIVES = ("old", "small", "happy", "tall", "quiet", "red", "young", "clever", "big", "tired")
_NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "nine")
_BE = ("is", "are")
_PREPOSITIONS = ("near", "behind", "beside", "with")


def _person(rng: random.Random) -> tuple[str, str, str, str]:
    """A name with its pronouns: (name, subject, object, possessive)."""
    if rng.random() < 0.5:
        return rng.choice(_MALE), "he", "him", "his"
    return rng.choice(_FEMALE), "she", "her", "her"


def _two_people(rng: random.Random) -> tuple[tuple[str, str, str, str], tuple[str, str, str, str]]:
    """Two people of different genders, so every pronoun has exactly one possible antecedent."""
    male = (rng.choice(_MALE), "he", "him", "his")
    female = (rng.choice(_FEMALE), "she", "her", "her")
    return (male, female) if rng.random() < 0.5 else (female, male)


def _number(rng: random.Random) -> int:
    return 0 if rng.random() < 0.5 else 1  # index into (singular, plural)


def _passage(rng: random.Random) -> tuple[str, ...]:
    """One item of the grammar: a sentence, or two when a pronoun refers across them."""
    kind = rng.randrange(9)
    if kind == 0:  # agreement across a prepositional attractor of the other number
        n = _number(rng)
        noun, attractor = rng.choice(_NOUNS)[n], rng.choice(_NOUNS + _LANDMARKS)[1 - n]
        return (
            f"The {rng.choice(_ADJECTIVES)} {noun} {rng.choice(_PREPOSITIONS)} the {attractor} {rng.choice(_VERBS)[n]}.",
        )
    if kind == 1:  # agreement across a relative clause
        n, m = _number(rng), _number(rng)
        noun, inner = rng.choice(_NOUNS)[n], rng.choice(_NOUNS)[m]
        return (f"The {noun} that the {inner} {rng.choice(_TRANSITIVE)[m]} {_BE[n]} in the {rng.choice(_PLACES)}.",)
    if kind == 2:  # two people, then pronouns that pick each out by gender
        (a, a_sub, _, _), (b, _, b_obj, _) = _two_people(rng)
        obj = rng.choice(_OBJECTS)[0]
        return f"{a} met {b} at the {rng.choice(_PLACES)}.", f"{a_sub.capitalize()} gave {b_obj} a {obj}."
    if kind == 3:  # possessive agrees with the subject's gender
        name, _, _, possessive = _person(rng)
        return (f"{name} {rng.choice(_PAST)} {possessive} {rng.choice(_OBJECTS)[0]} in the {rng.choice(_PLACES)}.",)
    if kind == 4:  # pronoun in a subordinate clause
        name, subject, _, _ = _person(rng)
        obj = rng.choice(_OBJECTS)[0]
        return (f"When {name} {rng.choice(_PAST)} the {obj}, {subject} was very {rng.choice(_ADJECTIVES)}.",)
    if kind == 5:  # number word -> plural noun, and "one" -> singular
        name = _person(rng)[0]
        singular, plural = rng.choice(_OBJECTS)
        if rng.random() < 0.25:
            return (f"{name} has one {singular}.",)
        return (f"{name} has {rng.choice(_NUMBERS)} {plural}.",)
    if kind == 6:  # there is / there are
        singular, plural = rng.choice(_OBJECTS)
        if rng.random() < 0.5:
            return (f"There is a {singular} in the {rng.choice(_PLACES)}.",)
        return (f"There are {rng.choice(_NUMBERS)} {plural} in the {rng.choice(_PLACES)}.",)
    if kind == 7:  # object pronoun refers back across a clause
        (a, a_sub, _, _), (b, _, b_obj, b_pos) = _two_people(rng)
        return (
            f"{a} {rng.choice(_PAST)} the {rng.choice(_OBJECTS)[0]} because {a_sub} wanted to help {b_obj} with {b_pos} work.",
        )
    # transitive present tense with agreement
    n = _number(rng)
    subject, obj = rng.choice(_NOUNS)[n], rng.choice(_NOUNS)[_number(rng)]
    return (f"The {subject} {rng.choice(_TRANSITIVE)[n]} the {obj} in the {rng.choice(_PLACES)}.",)


def _passages(num: int, seed: int) -> list[tuple[str, ...]]:
    """``num`` items of the grammar, each a tuple of its sentences."""
    rng = random.Random(seed)
    return [_passage(rng) for _ in range(num)]


def generate_sentences(num: int, seed: int = CORPUS_SEED) -> list[str]:
    """``num`` items of the grammar (a sentence, or two joined by a space), the same for the same ``seed``."""
    if num < 0:
        raise ValueError(f"num must be non-negative, got {num}.")
    return [" ".join(passage) for passage in _passages(num, seed)]


@functools.lru_cache(maxsize=4)
def corpus_text(num_sentences: int = CORPUS_SENTENCES, seed: int = CORPUS_SEED) -> str:
    """The bundled corpus as one text of ``num_sentences`` grammar items.

    Every sentence boundary (also the one inside a two-sentence item) is a space or, at ``NEWLINE_RATE``,
    a line break, so sentence-initial words occur both with and without their leading space.
    """
    if num_sentences < 0:
        raise ValueError(f"num_sentences must be non-negative, got {num_sentences}.")
    # Its own generator, so the sentences are the same as generate_sentences(num_sentences, seed).
    separators = random.Random(f"separators-{seed}")
    sentences = [sentence for passage in _passages(num_sentences, seed) for sentence in passage]
    parts = sentences[:1]
    for sentence in sentences[1:]:
        parts.append("\n" if separators.random() < NEWLINE_RATE else " ")
        parts.append(sentence)
    return "".join(parts)


def toy_symbol_ids(encoding: str = DEFAULT_ENCODING) -> tuple[int, ...]:
    """The tiktoken id of every toy symbol, in ``TOY_SYMBOLS`` order."""
    tokenizer = Tokenizer(encoding)
    ids = []
    for symbol in TOY_SYMBOLS:
        encoded = tokenizer.encoding.encode(symbol, allowed_special=set(), disallowed_special=())
        if len(encoded) != 1:
            raise ValueError(f"Toy symbol {symbol!r} is not a single token in {encoding}.")
        ids.append(encoded[0])
    return tuple(ids)
