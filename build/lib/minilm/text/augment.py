"""Text augmentation for fine-tuning (--augment p): each epoch sees slightly different sentences.

Two edits, each applied to every word with probability p (Wei & Zou 2019, "EDA", minus the
synonym lists, so no external resource is needed):

    token dropout   drop the word                     "the soup was really great" -> "the soup was great"
    adjacent swap   swap it with the word after it    "the soup was great"        -> "soup the was great"

Why it fights overfitting: with a few hundred labeled examples a classifier can memorise each
sentence as a whole (this exact string is positive). When a word may be missing or moved, no
exact string comes back twice, and what still predicts the label is the evidence spread over
the sentence ("great", "awful"), which is what generalises to new text. A new variant is drawn
every epoch, so over 8 epochs the model sees up to 8 versions of each example.

Why it can hurt: an edit can change what a sentence means while its label stays. Dropping
"not" turns "the soup was not good" into "the soup was good", still labeled negative: the
model is taught the wrong thing. So negations (not, no, never, nor, none, nothing, without,
and any word ending in n't) are protected: never dropped and never moved, because their scope
is the words right after them. Other words can matter as much ("barely", "too"), and labels
that hinge on word order suffer from swaps: keep p small (~0.1) and compare valid F1 with
--augment 0. Only training examples are augmented; valid and test stay as written.

Deterministic: example i of epoch e draws from np.random.default_rng([seed, e, i]), so the same
seed gives the same variants on every rerun, whatever the order the examples are visited in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NEGATIONS = frozenset({"not", "no", "never", "nor", "none", "nothing", "nobody", "nowhere", "neither", "without",
                       "cannot"})


def is_protected(word: str) -> bool:
    """True for a negation, which augmentation must neither drop nor move ("Not", "didn't", "never,")."""
    bare = word.lower().strip(".,;:!?\"'()").replace("’", "'")
    return bare in NEGATIONS or bare.endswith("n't")


def augment_text(text: str, p: float, rng: np.random.Generator) -> str:
    """One variant of `text`: each unprotected word dropped with probability p, then each
    unprotected neighbour pair swapped with probability p. Words are split on whitespace."""
    words = text.split()
    drop = rng.random(len(words)) < p  # (n_words,)
    kept = [w for w, d in zip(words, drop, strict=True) if not d or is_protected(w)]
    if not kept:  # everything was dropped: a sentence with no words teaches nothing
        kept = words
    swap = rng.random(len(kept)) < p  # (n_kept,): swap[i] means swap words i and i + 1
    i = 0
    while i < len(kept) - 1:
        if swap[i] and not is_protected(kept[i]) and not is_protected(kept[i + 1]):
            kept[i], kept[i + 1] = kept[i + 1], kept[i]
            i += 2  # a word moves at most once per variant
        else:
            i += 1
    return " ".join(kept)


def augment_texts(texts: Sequence[str], p: float, seed: int, epoch: int) -> list[str]:
    """The variants of every text for one epoch; p = 0 returns the texts unchanged."""
    if p == 0:
        return list(texts)
    return [augment_text(text, p, np.random.default_rng([seed, epoch, i])) for i, text in enumerate(texts)]
