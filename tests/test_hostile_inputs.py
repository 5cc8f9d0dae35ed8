"""Hostile inputs and faults: each ends in one `error:` line and a non-zero exit, never a traceback,
and the runs saved before are byte for byte what they were."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from jobs import CORPUS, tiny_finetune_config, tiny_pretrain_config, write_labeled_splits

from minilm.common import files
from minilm.common.errors import UserError
from minilm.common.run_dir import remove_stale_temporaries
from minilm.text.labeled import LabelMap, read_labeled
from minilm.tools import evaluate
from minilm.train import finetune, pretrain

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One finished tiny pretraining run and one fine-tuning run on it, shared by every case."""
    root = tmp_path_factory.mktemp("runs")
    pretrain.run(tiny_pretrain_config(root / "pre", max_steps=4, eval_every=2, save_every=2))
    splits = write_labeled_splits(root, sizes=(32, 8, 8))
    finetune.run(tiny_finetune_config(root / "pre", root / "ft", splits, epochs=1))
    return root, splits


@pytest.fixture
def work(runs, tmp_path):
    """A fresh copy of the finished runs for one case: (folder, labeled split paths)."""
    root, splits = runs
    shutil.copytree(root, tmp_path, dirs_exist_ok=True)
    return tmp_path, {name: tmp_path / path.name for name, path in splits.items()}


def checksums(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "tokens" not in p.parts}


def one_error_line(cli, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli(argv)
    assert exit_info.value.code not in (0, None)
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def pre_argv(root, *extra) -> list[str]:
    return ["--data", str(CORPUS), "--out", str(root / "pre"), "--preset", "tiny", "--vocab-size", "300",
            "--batch-size", "4", "--max-steps", "4", "--warmup-steps", "1", "--max-time", "0", "--eval-every", "2",
            "--eval-batches", "2", "--device", "cpu", "--context-length", "32", "--d-model", "32", "--n-head", "2",
            *extra]


def resume_argv(root) -> list[str]:
    """--resume takes the run's settings from its config.json: only the out dir is needed."""
    return ["--out", str(root / "pre"), "--resume", "--device", "cpu"]


def ft_argv(root, splits, *extra) -> list[str]:
    return ["--init", str(root / "pre"), "--train", str(splits["train"]), "--valid", str(splits["valid"]),
            "--test", str(splits["test"]), "--out", str(root / "ft"), "--epochs", "1", "--device", "cpu", *extra]


PRETRAIN_CASES = {
    "overwrite with a missing --data": (["--overwrite", "--data", "missing.txt"], "not found"),
    "overwrite with --lr 0": (["--overwrite", "--lr", "0"], "--lr must be positive"),
    "--lr nan": (["--overwrite", "--lr", "nan"], "--lr must be a finite number"),
    "--max-time nan": (["--overwrite", "--max-time", "nan"], "--max-time must be a finite number"),
    "--min-lr inf": (["--overwrite", "--min-lr", "inf"], "--min-lr must be a finite number"),
    "--val-fraction nan": (["--overwrite", "--val-fraction", "nan"], "finite"),
    "--dropout nan": (["--overwrite", "--dropout", "nan"], "dropout"),
    "--rope-base inf": (["--overwrite", "--rope-base", "inf"], "rope_base"),
    "negative seed": (["--overwrite", "--seed", "-1"], "--seed cannot be negative"),
    "negative --num-samples": (["--overwrite", "--num-samples", "-2"], "--num-samples cannot be negative"),
    "no flag on an existing run": ([], "already holds a saved run"),
    "--resume with other flags": (["--resume", "--batch-size", "8"], "cannot change"),
    "overwrite with a too long context": (["--overwrite", "--context-length", "100000"], "window needs"),
    "an empty --out": (["--out", ""], "--out is empty"),
    "a --preset that does not exist": (["--overwrite", "--preset", "huge"], "invalid choice"),
    "--eval-batches beyond any need": (["--overwrite", "--eval-batches", "1000000000"], "more than an evaluation"),
}


@pytest.mark.parametrize("case", PRETRAIN_CASES)
def test_pretraining_refuses_without_touching_the_saved_run(work, capsys, case):
    root, _ = work
    extra, message = PRETRAIN_CASES[case]
    argv = pre_argv(root, *extra)
    if "--data" in extra:  # the case's --data replaces the default one
        i = argv.index("--data")
        del argv[i:i + 2]
    before = checksums(root)
    assert message in one_error_line(pretrain.cli, argv, capsys)
    assert checksums(root) == before


FINETUNE_CASES = {
    "overwrite with --lr 0": (["--overwrite", "--lr", "0"], "--lr must be positive"),
    "overwrite with --head-lr nan": (["--overwrite", "--head-lr", "nan"], "finite"),
    "overwrite with a missing --train": (["--overwrite", "--train", "nope.tsv"], "not found"),
    "negative seed": (["--overwrite", "--seed", "-3"], "--seed cannot be negative"),
    "--out is --init": (["--overwrite", "--out", "{root}/pre"], "is the --ckpt dir"),
    "--out is --shape-from": (["--overwrite", "--init", "scratch", "--shape-from", "{root}/ft"], "--shape-from"),
    "--predict ''": (["--predict", ""], "nothing to classify"),
    "--predict on a pretraining dir": (["--predict", "hi", "--out", "{root}/pre"], "not a fine-tuned"),
    "--freeze beyond the model's blocks": (["--overwrite", "--freeze", "99"], "more blocks than the model has"),
}


@pytest.mark.parametrize("case", FINETUNE_CASES)
def test_finetuning_refuses_without_touching_the_saved_runs(work, capsys, case):
    root, splits = work
    extra, message = FINETUNE_CASES[case]
    extra = [arg.format(root=root) for arg in extra]
    before = checksums(root)
    assert message in one_error_line(finetune.cli, ft_argv(root, splits, *extra), capsys)
    assert checksums(root) == before


def corrupt(root, name: str) -> None:
    """Damage one checkpoint file of the fine-tuned run the way hand edits and crashes do."""
    ft = root / "ft"
    config = json.loads((ft / "config.json").read_text())
    damage = {
        "dropout as a string": lambda: config["model"].update(dropout="0.1"),
        "missing model key": lambda: config["model"].pop("n_layer"),
        "model section a list": lambda: config.update(model=[1, 2]),
        "job section a string": lambda: config.update(job="x"),
        "classifier without num_labels": lambda: config["classifier"].pop("num_labels"),
    }
    if name in damage:
        damage[name]()
        (ft / "config.json").write_text(json.dumps(config))
    elif name == "empty tokenizer.model":
        (ft / "tokenizer.model").write_bytes(b"")
    elif name == "empty model.pt":
        (ft / "model.pt").write_bytes(b"")
    elif name == "labels.json of another length":
        (ft / "labels.json").write_text(json.dumps({"labels": ["a", "b", "c"]}))
    elif name == "labels.json not a list":
        (ft / "labels.json").write_text(json.dumps({"labels": "ab"}))


CHECKPOINT_CASES = {
    "dropout as a string": "dropout must be a finite number",
    "missing model key": "missing ['n_layer']",
    "model section a list": "section 'model' must be a JSON object",
    "job section a string": "section 'job' must be a JSON object",
    "classifier without num_labels": "num_labels",
    "empty tokenizer.model": "empty (0 bytes)",
    "empty model.pt": "empty (0 bytes)",
    "labels.json of another length": "names 3 labels but the classifier has 2",
    "labels.json not a list": "not a labels file",
}


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_damaged_checkpoint_files_are_one_line_naming_the_file(work, capsys, case):
    root, splits = work
    corrupt(root, case)
    line = one_error_line(finetune.cli, ["--predict", "a great soup", "--out", str(root / "ft"), "--device", "cpu"],
                          capsys)
    assert CHECKPOINT_CASES[case] in line and str(root / "ft") in line


def test_an_empty_trainer_state_cannot_be_resumed_and_says_so(work, capsys):
    root, _ = work
    (root / "pre" / "trainer_state.pt").write_bytes(b"")
    assert "trainer_state.pt is empty" in one_error_line(pretrain.cli, resume_argv(root), capsys)


def test_model_pt_without_trainer_state_names_a_way_out_that_works(work, capsys):
    root, _ = work
    (root / "pre" / "trainer_state.pt").unlink()
    line = one_error_line(pretrain.cli, resume_argv(root), capsys)
    assert "--overwrite" in line and "drop --resume" not in line
    line = one_error_line(pretrain.cli, pre_argv(root), capsys)
    assert "--overwrite" in line and "--resume" not in line
    pretrain.cli(pre_argv(root, "--overwrite"))  # the way out works


def test_overwrite_replaces_the_old_run_only_when_the_new_one_writes(work):
    root, _ = work
    old = (root / "pre" / "model.pt").read_bytes()
    pretrain.run(tiny_pretrain_config(root / "pre", overwrite=True, max_steps=4, eval_every=2, seed=7))
    assert (root / "pre" / "model.pt").read_bytes() != old
    assert json.loads((root / "pre" / "config.json").read_text())["job"]["seed"] == 7


# -- the out dir: lock, temporaries, OS faults --------------------------------------------------


def test_a_second_run_on_a_locked_dir_is_refused_naming_the_first(work, capsys):
    root, _ = work
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (root / "pre" / ".lock").write_text(f"{holder.pid}\n")
        before = checksums(root)
        line = one_error_line(pretrain.cli, resume_argv(root), capsys)
        assert f"pid {holder.pid}" in line
        assert checksums(root) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_and_stale_temporaries_are_cleaned_up(work, capsys):
    root, _ = work
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = root / "pre"
    (out / ".lock").write_text(f"{dead.pid}\n")
    (out / ".trainer_state.pt.abc123.tmp").write_bytes(b"half")
    (out / "tokens" / "train.bin.tmp999").write_bytes(b"half")
    (out / "notes.tmp").write_text("the user's own file")
    pretrain.run(tiny_pretrain_config(out, resume=True, max_steps=6, eval_every=2, save_every=2))
    assert "taking over the lock" in capsys.readouterr().err
    assert not (out / ".trainer_state.pt.abc123.tmp").exists() and not (out / "tokens" / "train.bin.tmp999").exists()
    assert (out / "notes.tmp").exists()  # only the run's own temporaries go
    assert not (out / ".lock").exists()  # released at the end
    assert remove_stale_temporaries(out) == []


def test_saved_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        files.save_json({"a": 1}, tmp_path / "x.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644


def test_disk_full_during_a_save_is_one_line_and_the_old_file_stays(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    files.save_torch({"w": torch.ones(2)}, path)

    def full_disk(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(files.torch, "save", full_disk)
    with pytest.raises(UserError, match=f"disk full or not writable: {path}"):
        files.save_torch({"w": torch.zeros(2)}, path)
    assert files.load_torch(path)["w"].tolist() == [1.0, 1.0]
    assert os.listdir(tmp_path) == ["model.pt"]


def out_path_fault(root, kind: str):
    if kind == "a dangling symlink":
        (root / "link").symlink_to(root / "nowhere")
        return root / "link"
    if kind == "a file":
        (root / "file.txt").write_text("x")
        return root / "file.txt"
    (root / "file.txt").write_text("x")
    return root / "file.txt" / "below"


@pytest.mark.parametrize("kind,message", [("a dangling symlink", "symbolic link"), ("a file", "is a file"),
                                          ("below a file", "is a file, so no directory")])
def test_out_paths_that_cannot_be_dirs(work, capsys, kind, message):
    root, _ = work
    out = out_path_fault(root, kind)
    argv = pre_argv(root)
    argv[argv.index("--out") + 1] = str(out)
    assert message in one_error_line(pretrain.cli, argv, capsys)
    assert message in one_error_line(pretrain.cli, [*argv, "--find-lr"], capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes everything")
def test_permission_denied_is_one_line(work, capsys):
    root, _ = work
    unreadable = root / "secret.txt"
    unreadable.write_text("text\n")
    unreadable.chmod(0)
    argv = pre_argv(root, "--overwrite")
    argv[argv.index("--data") + 1] = str(unreadable)
    assert "permission denied" in one_error_line(pretrain.cli, argv, capsys).lower()


# -- corpus sniffing ----------------------------------------------------------------------------


def corpus_fault(root, kind: str):
    if kind == "gzip":
        path = root / "c.txt"
        path.write_bytes(gzip.compress(CORPUS.read_bytes()))
    elif kind == "binary":
        path = root / "c.txt"
        path.write_bytes(bytes(range(256)) * 40)
    elif kind == "a folder named x.txt":
        path = root / "corpus"
        (path / "x.txt").mkdir(parents=True)
    elif kind == "a pipe":
        path = root / "pipe.txt"
        os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind,message", [("gzip", "gzip-compressed: decompress it first"),
                                          ("binary", "looks like binary data"),
                                          ("a folder named x.txt", "holds no .txt files"),
                                          ("a pipe", "not a regular file")])
def test_corpus_that_is_not_text(work, capsys, kind, message):
    root, _ = work
    argv = pre_argv(root, "--overwrite")
    argv[argv.index("--data") + 1] = str(corpus_fault(root, kind))
    before = checksums(root)
    assert message in one_error_line(pretrain.cli, argv, capsys)
    assert checksums(root) == before


# -- output files of the tools: evaluate --json, attention_map --png --------------------------------


def tool_argv(root: Path, tool: str) -> tuple[Callable, list[str], str]:
    """(the tool's cli, its argv up to the output flag, that flag)."""
    if tool == "evaluate":
        return evaluate.cli, ["--ckpt", str(root / "pre"), "--data", str(CORPUS), "--device", "cpu"], "--json"
    from minilm.tools import attention_map
    return attention_map.cli, ["--ckpt", str(root / "pre"), "--text", "the soup", "--device", "cpu"], "--png"


@pytest.mark.parametrize("tool", ["evaluate", "attention_map"])
@pytest.mark.parametrize("target,message", [("pre/config.json", "would overwrite a file of the checkpoint"),
                                            ("pre/tokens/meta.json", "would overwrite a file of the checkpoint"),
                                            ("ft/labels.json", "would overwrite a file of the checkpoint"),
                                            ("pre", "is a directory")])
def test_a_tool_output_never_overwrites_a_checkpoint(work, capsys, tool, target, message):
    root, _ = work
    before = checksums(root)
    cli, argv, output_flag = tool_argv(root, tool)
    assert message in one_error_line(cli, [*argv, output_flag, str(root / target)], capsys)
    assert checksums(root) == before


# -- labels -------------------------------------------------------------------------------------


def test_label_order_does_not_depend_on_the_hash_seed():
    # "1" and "01" are the same integer; the order of a set of strings changes with the hash
    # seed, so the tie must be broken by the text. Every input order gives the same label ids.
    orders = [["01", "1", "2", "002"], ["1", "01", "002", "2"], ["2", "002", "1", "01"], ["002", "2", "01", "1"]]
    assert {tuple(LabelMap.from_labels(labels).names) for labels in orders} == {("01", "1", "002", "2")}


# -- labeled files --------------------------------------------------------------------------------


def test_tsv_quoted_csv_style_is_read_and_bare_quotes_stay_text(tmp_path):
    pandas_style = tmp_path / "pandas.tsv"
    pandas_style.write_text('text\tlabel\n"he said ""hi""\tthen\nleft"\tpos\nplain words\tneg\n')
    assert read_labeled(pandas_style) == (['he said "hi"\tthen\nleft', "plain words"], ["pos", "neg"])
    imdb_style = tmp_path / "imdb.tsv"
    imdb_style.write_text('text\tlabel\n"Great" film, 10/10\tpos\nhe said "boo\tneg\n"quoted"\tpos\n')
    assert read_labeled(imdb_style)[0] == ['"Great" film, 10/10', 'he said "boo', '"quoted"']


@pytest.mark.parametrize("name,content,message", [
    ("dup.tsv", "text\ttext\tlabel\na\tb\tpos\n", "more than once"),
    ("list.jsonl", '{"text": ["a", "b"], "label": "pos"}\n', "'text' must be a string, got a list"),
])
def test_ambiguous_labeled_files_are_refused(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=message):
        read_labeled(tmp_path / name)


def test_a_csv_field_longer_than_the_csv_module_limit_is_read(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text('text,label\n"' + "word " * 40_000 + '",pos\n')
    assert len(read_labeled(path)[0][0]) == 200_000


# -- predict ----------------------------------------------------------------------------------------


def test_predict_uses_the_max_length_the_model_was_trained_with(work, capsys):
    root, _ = work
    config = json.loads((root / "ft" / "config.json").read_text())
    config["job"]["max_length"] = 5
    (root / "ft" / "config.json").write_text(json.dumps(config))
    finetune.cli(["--predict", "a great soup " * 10, "--out", str(root / "ft"), "--device", "cpu"])
    assert "truncated to 5 tokens" in capsys.readouterr().out
    finetune.cli(["--predict", "a great soup " * 10, "--out", str(root / "ft"), "--device", "cpu",
                  "--max-length", "7"])
    assert "truncated to 7 tokens" in capsys.readouterr().out


# -- data scripts ------------------------------------------------------------------------------------


def test_data_scripts_without_network_say_so_in_one_line(tmp_path):
    script = f"""
import sys, urllib.request, urllib.error
sys.path.insert(0, {str(DATA_DIR)!r})
def offline(*args, **kwargs):
    raise urllib.error.URLError("Name or service not known")
urllib.request.urlopen = offline
import _download
from pathlib import Path
_download.download("https://example.org/x.zip", Path({str(tmp_path)!r}) / "x.zip", "use --local PATH")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: no network")
    assert "use --local PATH" in result.stderr and "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []  # no temporary left behind


# -- argparse errors, resume misuse, export targets ------------------


def test_a_bad_flag_value_is_one_line_without_the_usage_block(capsys):
    with pytest.raises(SystemExit) as exit_info:
        pretrain.cli(["--preset", "huge"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: argument --preset: invalid choice") and "--help" in err[0]


def test_resume_refuses_overwrite_and_a_run_that_already_finished(work, capsys):
    root, _ = work
    before = checksums(root)
    assert "pass one of them" in one_error_line(pretrain.cli, [*resume_argv(root), "--overwrite"], capsys)
    assert "already finished its 4 steps" in one_error_line(pretrain.cli, resume_argv(root), capsys)
    assert checksums(root) == before  # the finished run's report.json is not rewritten


def test_export_never_writes_into_its_source_or_another_run(work, capsys, tmp_path):
    pytest.importorskip("transformers")
    from minilm.interop import export
    root, _ = work
    (tmp_path / "link").symlink_to(root / "pre")
    before = checksums(root)
    export_pre = ["--ckpt", str(root / "pre"), "--to", "hf", "--overwrite"]
    cases = [([*export_pre, str(root / "pre")], "the dir it would be made from"),
             ([*export_pre, str(tmp_path / "link")], "the dir it would be made from"),  # the same dir by a symlink
             ([*export_pre, str(root / "ft")], "holds a minilm checkpoint"),
             (["--from-hf", str(root / "pre"), str(tmp_path / "imported")], "not a transformers model dir")]
    for argv, message in cases:
        assert message in one_error_line(export.cli, argv, capsys), argv
    assert checksums(root) == before


def test_fractions_that_cannot_hold_anything_out_are_refused_before_writing(work, capsys, tmp_path):
    root, splits = work
    one_each = tmp_path / "one_each.csv"
    one_each.write_text("text,label\ngood food,pos\nbad food,neg\nok food,mid\n")
    argv = ["--ckpt", str(root / "pre"), "--train", str(one_each), "--valid-fraction", "0.3", "--test-fraction",
            "0.3", "--out", str(tmp_path / "new_ft"), "--device", "cpu"]
    assert "too few examples per label" in one_error_line(finetune.cli, argv, capsys)
    assert not (tmp_path / "new_ft").exists()


def test_generate_refuses_a_seed_torch_cannot_take(work, capsys):
    from minilm.tools import generate
    root, _ = work
    argv = ["--ckpt", str(root / "pre"), "--text", "hi", "--device", "cpu", "--seed", str(2**70)]
    assert "--seed must be below 2**63" in one_error_line(generate.cli, argv, capsys)


def test_the_python_api_refuses_to_overwrite_runs_and_bad_arguments(work, tmp_path):
    from minilm import MiniLM, MiniLMForSequenceClassification
    root, _ = work
    before = checksums(root)
    lm = MiniLM.from_pretrained(root / "pre")
    clf = MiniLMForSequenceClassification.from_pretrained(root / "ft")
    for model, target in [(lm, root / "pre"), (clf, root / "ft"), (lm, root / "ft"), (clf, root / "pre")]:
        with pytest.raises(UserError, match="already holds a checkpoint; pass overwrite=True"):
            model.save_pretrained(target)
    with pytest.raises(UserError, match="is a file"):
        lm.save_pretrained(root / "pre" / "model.pt")
    for labels in ("ab", ["x", "x"], ["", ""], [None, None], ["only"]):
        with pytest.raises(UserError, match="labels="):
            MiniLMForSequenceClassification.from_pretrained(root / "pre", labels=labels)
    for batch_size in (0, -1, 1.5, True):
        with pytest.raises(UserError, match="batch_size must be a positive integer"):
            clf.predict(["good"], batch_size=batch_size)
    with pytest.raises(UserError, match="list of strings"):
        clf.predict([b"good"])
    with pytest.raises(UserError):
        MiniLM.from_pretrained(root / "pre", device="bogus")
    assert checksums(root) == before
    copy = tmp_path / "copy"
    shutil.copytree(root / "pre", copy)
    lm.save_pretrained(copy, overwrite=True)  # explicit: the old run's files go, nothing stale stays
    assert not (copy / "trainer_state.pt").exists() and (copy / "model.pt").is_file()
    assert MiniLM.from_pretrained(copy).cfg == lm.cfg
