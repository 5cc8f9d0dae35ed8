"""The embedded review world: the lesson holds, the files are right, generation is deterministic.

Generates once with a small unlabeled corpus (2,000 reviews instead of 70,000): the labeled splits
are identical to the full-size ones, because every split has its own random stream.
"""

from pathlib import Path

import pytest

import minilm.reviews.world as reviews_world
from minilm.reviews.check import (
    bag_of_words_baseline,
    careful_reader,
    careful_reader_accuracy,
    lesson_problems,
    read_labeled,
    words,
)
from minilm.reviews.vocab import DOMAINS, SHARED_SLOTS, TRANSFER, VISIBLE, Lexicon

SMALL = 2_000


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, Path]:
    return reviews_world.generate(tmp_path_factory.mktemp("reviews"), seed=0, n_unlabeled=SMALL)


def _all_words(lexicon: Lexicon) -> set[str]:
    return lexicon.words(True) | lexicon.words(False)


def test_files_and_sizes(paths):
    assert set(paths) == {"unlabeled", "train", "valid", "test", "transfer"}
    assert len(paths["unlabeled"].read_text().splitlines()) == SMALL
    sizes = {name: len(read_labeled(paths[name])) for name in ("train", "valid", "test", "transfer")}
    assert sizes == {"train": 1600, "valid": 500, "test": 1000, "transfer": 1000}
    for name in sizes:
        assert paths[name].read_text().splitlines()[0] == "text\tlabel"
    assert not list(paths["train"].parent.glob("*.tmp"))  # atomic writes leave nothing behind


def test_lesson_rules_hold(paths):
    # transfer words: never labeled, often unlabeled; no visible word in transfer.tsv; balance
    assert lesson_problems(paths, min_unlabeled_count=20) == []


def test_labels_follow_the_rule_exactly(paths):
    assert careful_reader_accuracy(paths) == {"train": 1.0, "valid": 1.0, "test": 1.0, "transfer": 1.0}


@pytest.mark.parametrize("text, positive", [
    ("the soup was not good.", False),
    ("the soup was not bad at all.", True),
    ("the soup was never disappointing.", True),
    ("there was nothing great about the soup.", False),
    ("the soup was great, but the service ruined it.", False),
    ("although the soup was bad, the staff were really lovely.", True),
    ("the soup was bad. however, the staff were good. five stars.", True),
])
def test_careful_reader_applies_negation_and_contrast(text, positive):
    assert careful_reader(text) == positive


def test_bag_of_words_cannot_solve_it(paths):
    accuracy = bag_of_words_baseline(paths)
    # Negation and contrast defeat counting on test (about 0.72 measured at seed 0) ...
    assert 0.6 < accuracy["test"] < 0.85
    # ... and transfer rows come in pairs with identical non-sentiment words, so a model that has
    # never seen a transfer word gives both rows of a pair the same score: exactly one is right.
    assert accuracy["transfer"] == 0.5


def test_transfer_pairs_differ_only_in_sentiment_words(paths):
    transfer_words = _all_words(TRANSFER)
    skeletons: dict[str, list[str]] = {}
    for text, label in read_labeled(paths["transfer"]):
        skeleton = " ".join("_" if word in transfer_words else word for word in words(text))
        skeletons.setdefault(skeleton, []).append(label)
    assert all(labels.count("positive") == labels.count("negative") for labels in skeletons.values())


def test_splits_share_no_review(paths):
    texts = [text for name in ("train", "valid", "test", "transfer") for text, _ in read_labeled(paths[name])]
    assert len(texts) == len(set(texts))


def test_same_seed_same_bytes(tmp_path):
    a = reviews_world.generate(tmp_path / "a", seed=3, n_unlabeled=200)
    b = reviews_world.generate(tmp_path / "b", seed=3, n_unlabeled=200)
    c = reviews_world.generate(tmp_path / "c", seed=4, n_unlabeled=200)
    assert all(a[name].read_bytes() == b[name].read_bytes() for name in a)
    assert all(a[name].read_bytes() != c[name].read_bytes() for name in a)


def test_ensure_default_data_generates_only_when_missing_or_stale(tmp_path, monkeypatch, capsys):
    directory = tmp_path / "reviews"
    paths = reviews_world.generate(directory, seed=0, n_unlabeled=50)
    version = directory / "VERSION"
    version.write_text(reviews_world._version_line(0, reviews_world.N_UNLABELED) + "\n")  # as if full size
    calls = []
    monkeypatch.setattr(reviews_world, "generate", lambda directory, seed: calls.append(directory))
    assert reviews_world.ensure_default_data(directory) == paths
    assert calls == []
    version.write_text(f"generator {reviews_world.GENERATOR_VERSION - 1} seed 0 unlabeled 70000\n")
    reviews_world.ensure_default_data(directory)  # made by an older generator: made again
    assert calls == [directory]
    missing = tmp_path / "missing"
    reviews_world.ensure_default_data(missing)
    assert calls == [directory, missing]
    assert "generating the default review corpus" in capsys.readouterr().out


def test_word_sets_are_disjoint_and_neutral_text_is_neutral():
    assert not _all_words(VISIBLE) & _all_words(TRANSFER)
    # Pairs in transfer.tsv need equal-length lists (same random draws pick aligned words).
    for part in ("adjectives", "verbs", "nouns", "turns"):
        polar = getattr(TRANSFER, part)
        assert len(polar.positive) == len(polar.negative), part
    neutral = [text for domain in DOMAINS for field in (domain.aspects, domain.plural_aspects, domain.things,
                                                        domain.experiences, domain.openers, domain.fillers)
               for text in field]
    neutral += [text for slots in [SHARED_SLOTS] + [d.slots for d in DOMAINS] for values in slots.values()
                for text in values]
    sentiment = _all_words(VISIBLE) | _all_words(TRANSFER)
    assert not {word for text in neutral for word in words(text)} & sentiment
