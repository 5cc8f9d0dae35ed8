"""--resume: which settings a resumed pretraining run takes from its config.json, which it may change,
and the state it reads back from trainer_state.pt.

A resumed run must compute exactly the steps the interrupted one would have (its weights end
bit-identical on a CPU), so everything that decides those steps comes from the saved run; only
how long it goes on, how often it reports and saves, and where it runs may change. The tensors
themselves (weights, optimizer, data position, RNG) and the loop's `RunState` are restored by
`restore`, from the trainer_state.pt the pretraining loop writes.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from minilm.checkpoint import read_config
from minilm.common.distributed import Distributed
from minilm.common.errors import UserError
from minilm.common.files import load_torch
from minilm.common.flags import flag_name
from minilm.common.run_dir import check_out_dir
from minilm.common.runtime import set_rng_state
from minilm.model.config import ModelConfig
from minilm.model.gpt import MiniLM
from minilm.text.lm_data import LMBatcher
from minilm.train.config import PretrainConfig
from minilm.train.trainer import Trainer

# What a run saved before a setting existed did, where that differs from today's default: such a
# run resumes as it started, not with a recipe it never used.
BEFORE_IT_EXISTED = {"optimizer": "adamw", "schedule": "cosine", "auto_size": False, "embedding_lr_scale": 1.0}


def saved_job(saved: dict[str, Any]) -> dict[str, Any]:
    """The job settings of a saved config.json; a setting the run was saved without takes the value
    runs had before it existed (BEFORE_IT_EXISTED), else its default. The model settings are the
    saved model's own, all of them, so a later change of the recipe's defaults cannot change them."""
    job = saved.get("job", {})
    values = {f.name: job[f.name] if f.name in job else BEFORE_IT_EXISTED.get(
        f.name, f.default_factory() if f.default is MISSING else f.default) for f in fields(PretrainConfig)}
    if isinstance(saved.get("model"), dict):
        values["model"] = {k: v for k, v in saved["model"].items() if k != "vocab_size"}
    return values


# Settings that decide what the resumed steps compute. Changing one would silently make a
# different run; --max-steps, --max-time, --eval-every and --save-every may change (extend a run).
RESUME_MUST_MATCH = ("data", "vocab_size", "tokenizer_type", "val_fraction", "batch_size", "grad_accum", "optimizer",
                     "eval_batches", "seed")


def check_resume(cfg: PretrainConfig, out: Path, model_cfg: ModelConfig) -> None:
    """--resume continues the saved run only if the config describes the same run (the command
    line already starts from the saved config: see resumed_config)."""
    saved = read_config(out)
    job = saved_job(saved)
    differ = {k: (job[k], getattr(cfg, k)) for k in RESUME_MUST_MATCH if job[k] != getattr(cfg, k)}
    saved_model, wanted_model = saved["model"], model_cfg.to_dict()
    differ.update({k: (v, wanted_model.get(k)) for k, v in saved_model.items() if wanted_model.get(k) != v})
    if differ:
        listed = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in differ.items())
        raise UserError(f"--resume: the flags describe a different run than {out} holds ({listed}); "
                        f"resume with only --resume --out {out} (and --max-steps, --max-time, ... to extend it)")


# What --resume lets a user change: how long the run goes on, how often it reports and saves,
# where it runs. Everything else decides what the resumed steps compute, so it comes from the
# run's config.json, and a different value on the command line is refused.
RESUME_MAY_CHANGE = ("out", "resume", "overwrite", "max_steps", "max_time", "eval_every", "save_every",
                     "num_samples", "device", "compile", "tensorboard")


def resumed_config(args, given: set[str]) -> PretrainConfig:
    """--resume: the run's own settings from its config.json, with the flags that may change."""
    out = Path(args.out)
    check_out_dir(out, resume=True, overwrite=False)  # a dir with no trainer_state.pt: advice that works
    if not (out / "config.json").is_file():
        raise UserError(f"nothing to resume in {out} (no config.json and trainer_state.pt); drop --resume to "
                        f"start a new run, or pass the --out of the run to continue")
    saved = read_config(out)
    if saved.get("kind") != "pretrain":
        raise UserError(f"{out} holds a {saved.get('kind', 'unknown')} run, not a pretraining run: nothing to resume")
    job = saved_job(saved)
    clashes = [(name, getattr(args, name), job[name])
               for name in sorted(given & set(job) - set(RESUME_MAY_CHANGE) - {"overwrite"})
               if getattr(args, name) != job[name]]
    # a model setting an older run did not save has its default (ModelConfig.from_dict reads it so)
    saved_model = {**{f.name: f.default for f in fields(ModelConfig)}, **saved["model"]}
    clashes += [(name, getattr(args, name), saved_model[name])
                for name in sorted(given & {f.name for f in fields(ModelConfig)})
                if getattr(args, name) != saved_model[name]]
    if clashes:
        listed = ", ".join(f"{flag_name(name)} {new} (the run has {old})" for name, new, old in clashes)
        raise UserError(f"--resume continues {out} with its own settings, so {listed} cannot change; drop "
                        f"those flags (only {', '.join(flag_name(n) for n in RESUME_MAY_CHANGE[3:])} may "
                        f"change), or start a new run with another --out")
    return PretrainConfig(**{**job, **{name: getattr(args, name) for name in given & set(RESUME_MAY_CHANGE)},
                             "out": str(out), "resume": True, "overwrite": "overwrite" in given and args.overwrite})


@dataclass
class RunState:
    """What the loop changes besides the weights and the optimizer; saved in trainer_state.pt."""

    rows: list[dict] = field(default_factory=list)  # one per evaluation: metrics.csv
    best_val: float = math.inf  # lowest validation loss so far: the one in model.pt
    loss_sum: float = 0.0  # training losses since the last evaluation, for its train_loss column
    loss_steps: int = 0
    last_saved_step: int | None = None  # the step trainer_state.pt holds (not saved in it)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "best_val": self.best_val, "loss_sum": self.loss_sum,
                "loss_steps": self.loss_steps}


def restore(out: Path, model: MiniLM, trainer: Trainer, batcher: LMBatcher, ddp: Distributed,
            device: torch.device) -> RunState:
    """--resume: weights, optimizer, schedule, data position and RNG exactly as trainer_state.pt saved them."""
    path = out / "trainer_state.pt"
    saved = load_torch(path)
    ddp.check_world_size(saved.get("world_size", 1) if isinstance(saved, dict) else 1)
    try:
        model.load_state_dict(saved["model"])
        trainer.load_state_dict(saved["trainer"])
        batcher.load_state_dict(saved["batcher"])
        rngs = saved["rng"] if isinstance(saved["rng"], list) else [saved["rng"]]  # one per rank
        set_rng_state(rngs[ddp.rank], device)
        return RunState(**saved["history"], last_saved_step=trainer.step_count)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{path} does not fit this run ({detail}); it was written by another version or "
                        f"changed by hand: resume from a good copy, or start over with --overwrite") from None
