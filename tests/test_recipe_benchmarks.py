"""The ablation runners (benchmarks/recipe.py, benchmarks/finetune_recipe.py) on tiny data: each arm
really trains, is scored, and lands in a table; no timing is asserted."""

import pytest
from jobs import CORPUS, tiny_pretrain_config, write_labeled_splits

from benchmarks import bag_of_words, finetune_recipe, recipe
from minilm.text.labeled import read_labeled
from minilm.train import pretrain


def test_today_pins_every_setting_the_defaults_changed_since():
    """The "today" arm must keep meaning the recipe before the ablation, whatever the defaults are now."""
    cfg = pretrain.parse_args(recipe.TODAY)
    model = cfg.model_config(4096)
    assert (cfg.optimizer, cfg.schedule, cfg.lr, cfg.min_lr) == ("adamw", "cosine", 3e-3, 3e-4)
    assert cfg.embedding_lr_scale == 1
    assert (model.activation, model.qk_norm, model.logit_softcap, model.zero_init_residual, model.tie_weights) == (
        "gelu", False, 0.0, False, True)


def test_the_ladder_adds_one_technique_per_rung():
    arms = recipe.ladder_arms([], ["today", "muon", "wsd"])
    assert arms[0] == ("today", recipe.TODAY)
    assert arms[2] == ("wsd", [*recipe.TODAY, "--optimizer", "muon", "--schedule", "wsd", "--decay-fraction", "0.2"])
    continued = recipe.ladder_arms(["today", "muon"], ["wsd"])  # --start: a second ladder goes on from a first
    assert continued == [arms[2]]
    assert recipe.rung_flags(["defaults"]) == []
    with pytest.raises(SystemExit, match="unknown rung"):
        recipe.rung_flags(["nonsense"])


def test_the_heldout_text_is_validation_documents_only(tmp_path):
    path = recipe.write_heldout(CORPUS, tmp_path, max_docs=3)
    lines = path.read_text().splitlines()
    documents = [line for line in CORPUS.read_text().splitlines() if line.strip()]
    assert lines == [documents[0], documents[20], documents[40]]  # every 20th: the val split of val_fraction 0.05


def test_the_pretraining_ablation_trains_and_scores_each_arm(tmp_path):
    results = tmp_path / "RESULTS.md"
    recipe.main(["--smoke", "--data", str(CORPUS), "--out", str(tmp_path / "runs"), "--results", str(results)])
    text = results.read_text()
    assert "## Pretraining recipe: same minutes per arm" in text
    assert "| today |" in text and "| muon |" in text and "+0.0%" in text
    for arm in ("today-s1337", "muon-s1337"):
        assert (tmp_path / "runs" / f"{arm}.json").is_file()


def test_the_finetuning_ablation_scores_each_arm_on_a_label_subset(tmp_path):
    pre = tmp_path / "pre"
    pretrain.run(tiny_pretrain_config(pre, max_steps=4))
    data = tmp_path / "data"
    data.mkdir()
    write_labeled_splits(data)
    results = tmp_path / "RESULTS.md"
    finetune_recipe.main(["--smoke", "--ckpt", str(pre), "--data", str(data), "--labels", "40",
                          "--out", str(tmp_path / "runs"), "--results", str(results)])
    text = results.read_text()
    assert "## Fine-tuning recipe: same minutes per arm" in text and "| lora |" in text
    texts, labels = read_labeled(tmp_path / "runs" / "train_40.tsv", None, "label")
    assert len(texts) == 40 and labels.count("positive") == 20  # drawn label by label


def test_bag_of_words_counts_each_word_once_and_pairs_of_neighbours():
    assert bag_of_words.grams("Great, great film!", 1) == {"great", "film"}
    assert bag_of_words.grams("not a good film", 2) == {"not", "a", "good", "film", "not a", "a good", "good film"}
    vocab = bag_of_words.build_vocab(["a good film", "a bad film", "odd"], ngrams=1, min_count=2)
    assert vocab == {"a": 0, "film": 1}  # "good", "bad", "odd" occur in one text each
    x = bag_of_words.features(["film a a", "nothing known"], vocab, ngrams=1).to_dense()
    assert x.tolist() == [[1.0, 1.0], [0.0, 0.0]]


def test_the_bag_of_words_baseline_learns_which_words_carry_the_label(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_labeled_splits(data)
    results = tmp_path / "RESULTS.md"
    bag_of_words.main(["--data", str(data), "--min-count", "1", "--steps", "50", "--results", str(results)])
    text = results.read_text()
    assert "## Bag-of-words baseline: logistic regression" in text
    chosen = text.split("**chosen on valid**")[1]
    assert "| 1.0000 | 1.0000 |" in chosen  # valid and test: the adjective alone decides the label
