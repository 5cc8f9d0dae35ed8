"""--augment: deterministic variants, identity at p = 0, negations never dropped or moved, and the
fine-tuning loop trains on a new variant every epoch."""

import json

from jobs import tiny_finetune_config, write_labeled_splits
from tiny_checkpoint import make_checkpoint

from minilm.text.augment import augment_texts, is_protected
from minilm.text.tokenizer import Tokenizer
from minilm.train import finetune, labeled_splits

TEXTS = [
    "the soup was not good at all and the waiter never came back",
    "no one liked the tiny room, but the harbour view was lovely",
    "I didn't enjoy the film; it wasn't funny and nothing happened",
    "a wonderful sandwich with a great price and a friendly smile",
] * 25


def test_same_seed_and_epoch_give_the_same_variants():
    assert augment_texts(TEXTS, 0.2, seed=1, epoch=3) == augment_texts(TEXTS, 0.2, seed=1, epoch=3)
    assert augment_texts(TEXTS, 0.2, seed=1, epoch=3) != augment_texts(TEXTS, 0.2, seed=1, epoch=4)
    assert augment_texts(TEXTS, 0.2, seed=1, epoch=3) != augment_texts(TEXTS, 0.2, seed=2, epoch=3)


def test_each_example_depends_only_on_its_own_position():
    variants = augment_texts(TEXTS, 0.2, seed=1, epoch=3)
    assert augment_texts(TEXTS[:10], 0.2, seed=1, epoch=3) == variants[:10]


def test_p_zero_is_the_identity_and_p_positive_changes_most_texts():
    assert augment_texts(TEXTS, 0.0, seed=1, epoch=1) == TEXTS
    changed = sum(a != b for a, b in zip(augment_texts(TEXTS, 0.2, seed=1, epoch=1), TEXTS, strict=True))
    assert changed > len(TEXTS) // 2


def test_negations_are_never_dropped_or_moved():
    for epoch in range(5):
        for original, variant in zip(TEXTS, augment_texts(TEXTS, 0.5, seed=0, epoch=epoch), strict=True):
            protected = [w for w in original.split() if is_protected(w)]
            assert [w for w in variant.split() if is_protected(w)] == protected
            # each negation keeps the word that followed it, or a word from later on (never one from before)
            words = variant.split()
            for i, w in enumerate(words[:-1]):
                if is_protected(w):
                    after = original.split()[original.split().index(w) + 1:]
                    assert words[i + 1] in after, (original, variant)


def test_protected_words():
    assert all(is_protected(w) for w in ("not", "Never", "no,", "didn't", "wasn’t", "nothing"))
    assert not any(is_protected(w) for w in ("note", "know", "good", "nothingness"))


def test_a_text_is_never_emptied():
    assert all(augment_texts(["great", "a b"], 0.5, seed=s, epoch=1)[0] for s in range(50))


def test_the_training_loop_sees_a_new_variant_every_epoch(tmp_path):
    init = make_checkpoint(tmp_path / "init")
    splits = write_labeled_splits(tmp_path)
    tokenizer = Tokenizer.load(init / "tokenizer.model")
    cfg = tiny_finetune_config(init, tmp_path / "ft", splits, augment=0.3)
    loaded, _ = labeled_splits.load_splits(cfg, tokenizer, max_length=16)
    train = loaded["train"]
    epoch1, epoch2 = (labeled_splits.epoch_sequences(cfg, train, tokenizer, e, 16) for e in (1, 2))
    assert epoch1 != train.seqs and epoch1 != epoch2 and len(epoch1) == len(train.seqs)
    assert all(seq[0] == tokenizer.bos_id and seq[-1] == tokenizer.eos_id for seq in epoch1)
    no_augment = tiny_finetune_config(init, tmp_path / "ft", splits)
    assert labeled_splits.epoch_sequences(no_augment, train, tokenizer, 1, 16) is train.seqs

    finetune.run(tiny_finetune_config(init, tmp_path / "ft", splits, augment=0.2, epochs=2))
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["job"]["augment"] == 0.2
