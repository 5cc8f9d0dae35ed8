"""The jobs' settings: everything train_pretrain.py and train_finetune.py can be told.

Each field carries its help text in `metadata["help"]`; `minilm/common/flags.py` turns the fields
into command-line flags, so `--help` and this file can never disagree. Validation happens in
`__post_init__` with messages that say what to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minilm.common.errors import UserError
from minilm.common.flags import check_numbers
from minilm.common.runtime import DEVICE_HELP
from minilm.model.config import PRESETS, ModelConfig, option
from minilm.train.optim import OPTIMIZERS
from minilm.train.trainer import SCHEDULES, OptimSettings, check_settings

MAX_EVAL_BATCHES = 10_000  # fixed val batches are built up front: a bound keeps that in memory
DEFAULT_WARMUP = 100  # steps of warmup for a run of 1,000 steps or more
WARMUP_SHARE = 0.1  # shorter runs warm up for this share of their steps


def scaled_warmup(max_steps: int) -> int:
    """Warmup when the user did not choose one: 100 steps, or 10% of a shorter run (so
    `--max-steps 6` works); 100 for a run bounded by time only (max_steps 0)."""
    return min(DEFAULT_WARMUP, int(WARMUP_SHARE * max_steps)) if max_steps > 0 else DEFAULT_WARMUP

# The model choices pretraining makes where ModelConfig's own defaults stay the plain GPT (which
# every model built by hand, and every test, gets): chosen by the ablation in benchmarks/RESULTS.md
# ("Pretraining recipe"); docs/recipe.md says what each does. A flag the user gives wins.
RECIPE_MODEL_DEFAULTS: dict = {"zero_init_residual": True, "tie_weights": False}

# Job defaults a preset brings for the flags the user does not give (train_pretrain.py applies
# them). The defaults below suit the CPU presets; gpt2-small is a GPU model and takes GPT-2
# small's recipe: a rate five times lower, a longer warmup, a real vocabulary and a step budget.
PRESET_JOB_DEFAULTS = {
    "gpt2-small": dict(vocab_size=32000, lr=6e-4, min_lr=6e-5, warmup_steps=1000, max_steps=20000, max_time=0.0,
                       weight_decay=0.1),
}


@dataclass
class PretrainConfig:
    """Everything train_pretrain.py can be told. Model sizes come from --preset, then flags."""

    data: str = option("", "pretraining text: a .txt file (one document per line), a folder of .txt "
                           "files, or a .jsonl file with a \"text\" field; empty = the embedded default "
                           "review corpus, generated on first use (in data/reviews of a minilm checkout, "
                           "else in $MINILM_DATA or ~/.cache/minilm)")
    out: str = option("out/pretrain", "output dir: config.json, model.pt, tokenizer.model, metrics.csv, ...")
    preset: str = option("small", "model size: tiny (tests), small (laptop CPU, minutes), medium (long CPU "
                                  "or short GPU run), gpt2-small (GPU; brings GPU job defaults for the flags not "
                                  "given: --vocab-size 32000 --lr 6e-4 --min-lr 6e-5 --warmup-steps 1000 "
                                  "--max-steps 20000 --max-time 0 --weight-decay 0.1)", tuple(PRESETS))
    vocab_size: int = option(4096, "tokenizer vocabulary size (trained on --data); the model's vocab_size")
    tokenizer_type: str = option("bpe", "SentencePiece algorithm for the tokenizer", ("bpe", "unigram"))
    val_fraction: float = option(0.05, "share of documents held out for validation")
    batch_size: int = option(32, "sequences per micro-batch per process")
    grad_accum: int = option(1, "micro-batches per optimizer step (global batch = batch_size x grad_accum "
                                "x processes)")
    lr: float = option(6e-3, "peak learning rate (small models tolerate larger rates; GPT-2 small used 6e-4)")
    min_lr: float = option(0.0, "learning rate at the end of the decay")
    warmup_steps: int | None = option(None, "steps of linear warmup from 0 to --lr (default: "
                                            f"{DEFAULT_WARMUP}, or {WARMUP_SHARE:.0%} of a shorter --max-steps)")
    weight_decay: float = option(0.0, "decoupled weight decay on the weight matrices (Muon's and AdamW's); 0 "
                                      "measured best for runs of minutes (docs/recipe.md); GPT-2 used 0.1")
    grad_clip: float = option(1.0, "clip the global gradient norm to this (0 = off)")
    optimizer: str = option("muon", "muon: orthogonalised momentum for the matrices inside the blocks, AdamW "
                                    "for the rest (same --lr); or adamw for every parameter (GPT-2's recipe)",
                            OPTIMIZERS)
    schedule: str = option("wsd", "learning-rate decay after warmup: wsd (stay at --lr, then a straight line "
                                  "to --min-lr over the last --decay-fraction), or cosine to --min-lr", SCHEDULES)
    decay_fraction: float = option(0.5, "with --schedule wsd: the share of the run spent decaying")
    embedding_lr_scale: float = option(10.0, "the token embedding's (and value embeddings') lr is --lr times this "
                                             "(an untied embedding only; with --tie-weights pass 1: that matrix is "
                                             "also the output head)")
    # A step budget, not a time budget, decides the default run: the same steps and the same
    # result on any machine (bit-identical on a CPU), however busy. ~900 steps of the small
    # preset take about 6 minutes on a quiet 2-core CPU and are enough for the transfer lesson.
    max_steps: int = option(900, "total optimizer steps of the run")
    max_time: float = option(0.0, "stop after this many minutes of training (0 = no limit); given without "
                                  "--max-steps, the run trains for exactly that long (and, without --preset or "
                                  "a size flag, picks its model size for it: --auto-size); the lr schedule "
                                  "follows time when it runs out first, so the run still decays to --min-lr")
    auto_size: bool = option(False, "size the model for --max-time: measure how fast a few sizes train on this "
                                    "machine and take the largest that sees >= 5 tokens per block parameter "
                                    "in the budget (minilm/train/sizing.py); on by default for --max-time N "
                                    "without --max-steps, --preset or a size flag")
    eval_every: int = option(100, "evaluate validation loss every N steps")
    eval_batches: int = option(20, "fixed validation batches per evaluation")
    save_every: int = option(200, "write trainer_state.pt (for --resume) every N steps")
    num_samples: int = option(3, "texts to generate at the end of the run")
    device: str = option("auto", DEVICE_HELP)
    dtype: str = option("auto", "training precision; auto = bf16 on GPUs with native bf16 (compute "
                                "capability >= 8.0), fp16 with loss scaling on older GPUs, fp32 elsewhere",
                        ("auto", "fp32", "bf16", "fp16"))
    compile: bool = option(False, "torch.compile the model (faster on GPUs after a minute of compiling)")
    seed: int = option(1337, "random seed: same seed, same data order, same initial weights")
    resume: bool = option(False, "continue the run saved in --out from its trainer_state.pt")
    overwrite: bool = option(False, "start a new run even if --out already holds one (its files are replaced)")
    find_lr: bool = option(False, "run a learning-rate range test on a fresh model instead of training: writes "
                                  "only lr_find.csv/.png into --out and prints a suggested --lr")
    find_lr_steps: int = option(100, "steps of the range test (the lr rises from 1e-6 to 1 over them)")
    tensorboard: bool = option(False, "also log the metrics for TensorBoard into --out/tensorboard "
                                      "(pip install \"minilm[tensorboard]\")")
    model: dict = field(default_factory=dict)  # ModelConfig fields given as flags; override the preset

    def __post_init__(self) -> None:
        check_numbers(self)
        if not self.out.strip():
            raise UserError("--out is empty; name the dir to write, e.g. --out out/run1")
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.eval_batches > MAX_EVAL_BATCHES:
            raise UserError(f"--eval-batches {self.eval_batches} is more than an evaluation ever needs (the val loss "
                            f"settles long before); use at most {MAX_EVAL_BATCHES:,}")
        for name in ("batch_size", "eval_every", "eval_batches", "save_every", "vocab_size"):
            if getattr(self, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.resume and self.overwrite:
            raise UserError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
        if self.warmup_steps is None:
            self.warmup_steps = scaled_warmup(self.max_steps)
        for name in ("num_samples", "seed", "max_steps", "warmup_steps", "find_lr_steps"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} cannot be negative, got {getattr(self, name)}")
        if not 0.0 < self.val_fraction < 0.5:
            raise UserError(f"--val-fraction must be between 0 and 0.5, got {self.val_fraction}")
        if self.find_lr_steps < 10:
            raise UserError(f"--find-lr-steps must be at least 10 to draw a curve, got {self.find_lr_steps}")
        if self.auto_size and self.max_time <= 0:
            raise UserError("--auto-size sizes the model for a time budget: also give --max-time N (minutes)")
        model = self.model_config(self.vocab_size)  # fail now, not after tokenizing, if the model flags clash
        if self.embedding_lr_scale <= 0:
            raise UserError(f"--embedding-lr-scale must be positive, got {self.embedding_lr_scale}")
        if self.embedding_lr_scale != 1.0 and model.tie_weights:
            raise UserError(f"--embedding-lr-scale {self.embedding_lr_scale:g} is for an embedding of its own, but "
                            "--tie-weights makes it the output head too: add --embedding-lr-scale 1")

    def model_config(self, vocab_size: int) -> ModelConfig:
        """The recipe's model choices and the preset's sizes, overridden by any ModelConfig flag given."""
        return ModelConfig(**{**RECIPE_MODEL_DEFAULTS, **PRESETS[self.preset], **self.model, "vocab_size": vocab_size})


@dataclass
class FinetuneConfig:
    """Everything train_finetune.py can be told."""

    init: str = option("out/pretrain", "checkpoint dir to start from, or 'scratch' for random weights "
                                       "(the shape and tokenizer then come from --shape-from)",
                       flag="--ckpt", aliases=("--init",))
    shape_from: str = option("out/pretrain", "with --ckpt scratch or --compare-scratch: the checkpoint dir "
                                             "whose architecture and tokenizer the random model copies")
    train: str = option("", "labeled training file (.csv/.tsv with a header, or .jsonl); empty = the "
                            "embedded review data")
    valid: str = option("", "labeled validation file, used to pick the best epoch")
    test: str = option("", "labeled test file, reported once at the end")
    valid_fraction: float = option(0.0, "without --valid: hold out this share of --train as the validation "
                                        "set (drawn per label with --seed)")
    test_fraction: float = option(0.0, "without --test: hold out this share of --train as the test set "
                                       "(drawn per label with --seed)")
    transfer: str = option("", "an extra labeled test file reported separately; with the embedded data, "
                               "its transfer split")
    text_column: str = option("", "name of the text column (default: 'text', else 'sentence')")
    label_column: str = option("label", "name of the label column")
    out: str = option("out/finetune", "output dir; with --predict, the fine-tuned dir to load")
    epochs: int = option(8, "passes over the training data")
    max_steps: int = option(0, "stop after this many optimizer steps (0 = --epochs decides)")
    max_time: float = option(0.0, "also stop after this many minutes of training (0 = no limit); the lr "
                                  "schedule then follows time, so the run still decays to --min-lr")
    batch_size: int = option(32, "examples per optimizer step")
    lr: float = option(1e-3, "peak learning rate of the body (on IMDB 1e-3 beat 5e-4 with all labels and tied "
                             "with it at 2,000: docs/finetuning.md)")
    head_lr: float = option(0.0, "peak learning rate of the new classification head (0 = same as --lr); "
                                 "a fresh head can take larger steps than pretrained weights")
    min_lr: float = option(0.0, "learning rate at the end of the cosine decay")
    weight_decay: float = option(0.01, "AdamW decoupled weight decay on weight matrices")
    warmup_steps: int = option(20, "steps of linear warmup")
    grad_clip: float = option(1.0, "clip the global gradient norm to this (0 = off)")
    dropout: float = option(0.1, "dropout in the body and before the head during fine-tuning")
    pooling: str = option("mean", "sequence vector for the head: the mean over the real tokens (+1.2 points "
                                  "on IMDB at 2,000 labels: docs/finetuning.md) or the last real token (GPT-1's "
                                  "choice; the one transformers' classifiers read, so --to hf export needs it)",
                          ("last", "mean"))
    head_bias: bool = option(False, "give the classification head a bias vector; without one (as in Hugging "
                                    "Face's classification heads) the model exports to transformers as is")
    freeze: str = option("none", "'none' trains everything, 'embeddings' all but the token embeddings, "
                                 "'body' only the head, a number N the head and the last N blocks")
    lm_loss_weight: float = option(0.0, "weight λ of GPT-1's auxiliary language-model loss: L = L_cls + λ·L_lm "
                                        "(GPT-1 used 0.5)")
    class_weights: str = option("none", "'auto' weights each class by 1/frequency, for imbalanced labels",
                                ("none", "auto"))
    patience: int = option(0, "stop after this many epochs without a better valid macro-F1 (or the same "
                              "one at a lower valid loss) (0 = never)")
    max_length: int = option(0, "longest input in tokens, longer texts are truncated (0 = the context length)")
    long_texts: str = option("windows", "texts longer than the context (or --max-length): 'windows' reads them as "
                                        "windows of the context, --window-stride tokens apart, and averages the "
                                        "windows' logits (+3.6 points on IMDB at 2,000 labels: docs/finetuning.md); "
                                        "'truncate' keeps their first tokens",
                             ("truncate", "windows"))
    window_stride: int = option(0, "with --long-texts windows: tokens from one window's start to the next (0 = "
                                   "3/4 of the context, so windows overlap by a quarter)")
    max_windows: int = option(4, "with --long-texts windows: at most this many windows per text; a longer text "
                                 "keeps its first quarter and its end (head + tail: a review's verdict is often "
                                 "in its last lines) and loses the middle. Bounds time and memory per text")
    train_windows: str = option("one", "with --long-texts windows, what training reads of a long text: 'one' "
                                       "window drawn anew each epoch (an epoch then costs what truncation costs); "
                                       "'all' its windows, averaged as in evaluation (more minutes per epoch); "
                                       "evaluation and prediction always average all windows", ("one", "all"))
    lora_rank: int = option(0, "train low-rank adapters of this rank beside the frozen attention and MLP "
                               "matrices (LoRA) instead of the whole body; the head trains too; the adapters "
                               "are merged into the weights on save (0 = off)")
    lora_alpha: float = option(0.0, "LoRA's scale α: the update is (α/r)·B A (0 = 2 x --lora-rank)")
    layer_lr_decay: float = option(1.0, "layer-wise learning-rate decay d: the top block trains at --lr, each block "
                                        "below at d times the one above, the embeddings below them all "
                                        "(1 = every layer at --lr)")
    probe_steps: int = option(0, "LP-FT: first train only the head for this many steps (a linear probe, at "
                                 "--head-lr), then fine-tune as usual from there (0 = off)")
    label_smoothing: float = option(0.0, "train against (1-ε)·one-hot + ε/K instead of one-hot: a classifier "
                                         "trained on few labels stays less overconfident (0 = off)")
    compare_scratch: bool = option(False, "also train the identical classifier from random weights and print "
                                          "both side by side")
    predict: list = option(None, "classify these texts with the fine-tuned model in --out, then exit")
    predict_file: str = option("", "classify each line of this file with the model in --out, then exit")
    device: str = option("auto", DEVICE_HELP)
    dtype: str = option("auto", "training precision", ("auto", "fp32", "bf16", "fp16"))
    seed: int = option(1337, "random seed")
    overwrite: bool = option(False, "replace a previous fine-tuning run in --out")
    augment: float = option(0.0, "text augmentation of training examples, a new variant every epoch: each word "
                                 "is dropped, or swapped with its neighbour, with this probability (0 = off; "
                                 "negations like 'not' are never touched); ~0.1 against overfitting small data")
    find_lr: bool = option(False, "run a learning-rate range test on the classifier instead of training: "
                                  "writes only lr_find.csv/.png into --out and prints a suggested --lr")
    find_lr_steps: int = option(100, "steps of the range test (the lr rises from 1e-6 to 1 over them)")
    tensorboard: bool = option(False, "also log the metrics for TensorBoard into --out/tensorboard "
                                      "(pip install \"minilm[tensorboard]\")")

    def __post_init__(self) -> None:
        check_numbers(self)
        if not self.out.strip():
            raise UserError("--out is empty; name the dir to write, e.g. --out out/run1")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        for name in ("max_steps", "patience", "max_length", "warmup_steps", "seed"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} cannot be negative, got {getattr(self, name)}")
        if self.max_time < 0:
            raise UserError(f"--max-time cannot be negative, got {self.max_time}")
        if self.head_lr < 0 or self.lm_loss_weight < 0:
            raise UserError("--head-lr and --lm-loss-weight cannot be negative")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.augment <= 0.5:
            raise UserError(f"--augment must be in [0, 0.5] (a per-word probability), got {self.augment}")
        if self.find_lr_steps < 10:
            raise UserError(f"--find-lr-steps must be at least 10 to draw a curve, got {self.find_lr_steps}")
        for name in ("valid_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, name) < 0.5:
                raise UserError(f"--{name.replace('_', '-')} must be in [0, 0.5), got {getattr(self, name)}")
        for name in ("window_stride", "lora_rank", "probe_steps"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} cannot be negative, got {getattr(self, name)}")
        if self.max_windows < 1:
            raise UserError(f"--max-windows must be at least 1, got {self.max_windows}")
        if self.lora_alpha < 0:
            raise UserError(f"--lora-alpha cannot be negative, got {self.lora_alpha}")
        if not 0.0 < self.layer_lr_decay <= 1.0:
            raise UserError(f"--layer-lr-decay must be in (0, 1], got {self.layer_lr_decay}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.lora_rank and self.freeze != "none":
            raise UserError(f"--lora-rank freezes the body and trains adapters beside it; --freeze {self.freeze} "
                            f"says otherwise: pass one of them")
        if self.freeze not in ("none", "embeddings", "body") and not self.freeze.isdigit():
            raise UserError(f"--freeze must be 'none', 'embeddings', 'body' or a number of blocks to train, "
                            f"got {self.freeze!r}")
        # The optimizer settings a run will use, checked now rather than after the data is read
        # (the step count is not known yet; 1 stands in for it).
        check_settings(OptimSettings(self.lr, self.min_lr, 0, 1, 0.0, self.weight_decay, self.grad_clip))

    def windows_for(self, context_length: int) -> tuple[int, int]:
        """(window stride, most windows per text) for a model of this context; (0, 1) with --long-texts truncate."""
        if self.long_texts == "truncate":
            return 0, 1
        stride = self.window_stride or max(1, 3 * context_length // 4)
        if stride > context_length:
            raise UserError(f"--window-stride {stride} is longer than the model's context ({context_length}): windows "
                            f"would skip text; use at most {context_length}")
        return stride, self.max_windows
