"""Command-line flags made from config dataclasses: one field, one flag, its help from the field.

    field `max_steps: int = option(3000, "total optimizer steps")`  ->  --max-steps 3000

Booleans become --flag / --no-flag. A field's `choices` become argparse choices, shown in
`--help`; its `aliases` are other names of the same flag (older names keep working). Because the
flags are generated, `--help` lists every knob the dataclass has, with the same words, and every
command (the two jobs and the tools) uses the same words for the same things: --ckpt for a
checkpoint dir to read, --out for a dir to write, --text for text, --device auto.

Every command exists in three spellings, and usage lines and "next:" hints use the one the user
typed: `minilm-pretrain` (console script), `python -m minilm.pretrain`, `python train_pretrain.py`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any

from minilm.common.errors import UserError

JOB_SCRIPTS = ("pretrain", "finetune")  # the commands that also exist as train_<job>.py


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _base_type(annotation: Any) -> Any:
    """int | None -> int; "float" -> float (annotations are strings under `from __future__`)."""
    if isinstance(annotation, str):
        builtin = {"int": int, "float": float, "str": str, "bool": bool, "list": list}
        annotation = builtin.get(annotation.split(" |")[0], str)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def add_flags(parser: argparse.ArgumentParser, cls: type, title: str, skip: tuple[str, ...] = (),
              defaults_from_elsewhere: bool = False) -> None:
    """Add one flag per field of dataclass `cls` (except `skip`) to an argument group `title`.

    defaults_from_elsewhere: the flag's default is None, meaning "not given" (used for model
    sizes, which come from --preset unless a flag overrides them).
    """
    group = parser.add_argument_group(title)
    for f in dataclasses.fields(cls):
        if f.name in skip or "help" not in f.metadata:
            continue
        kind = _base_type(f.type)
        names = [f.metadata.get("flag") or flag_name(f.name), *f.metadata.get("aliases", ())]
        is_required = f.default is dataclasses.MISSING and not defaults_from_elsewhere
        default = None if defaults_from_elsewhere or is_required else f.default
        help_text = f.metadata["help"]
        if not defaults_from_elsewhere and not is_required and f.default not in (None, "", ()):
            help_text += f" (default: {f.default})"
        common = dict(dest=f.name, default=default, help=help_text.replace("%", "%%"))  # argparse formats with %
        if is_required:
            common["required"] = True
        if kind is bool:
            group.add_argument(*names, action=argparse.BooleanOptionalAction, **common)
        elif kind is list:  # a list of strings: --text "one text" "another text"
            group.add_argument(*names, nargs="+", metavar="TEXT", **common)
        else:  # with choices, argparse shows them ({a,b,c}); without, the field's name
            choices = f.metadata.get("choices")
            metavar = None if choices else names[0][2:].replace("-", "_").upper()
            group.add_argument(*names, type=kind, choices=choices, metavar=metavar, **common)


def parse_given(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, set[str]]:
    """Parse argv; also return the names of the fields the user actually gave (even at their default).

    argparse fills in a default only for attributes the namespace does not have yet, so a
    namespace pre-filled with a marker shows which ones the command line set.
    """
    unset = object()
    marked = argparse.Namespace(**{a.dest: unset for a in parser._actions if a.dest != "help"})
    given = {name for name, value in vars(parser.parse_args(argv, namespace=marked)).items() if value is not unset}
    return parser.parse_args(argv), given


def program_name(command: str) -> str:
    """How the user started `command` ("pretrain", "attention-map", ...), for its usage line."""
    script = Path(sys.argv[0]).name
    if script == f"minilm-{command}" or (command in JOB_SCRIPTS and script == f"train_{command}.py"):
        return script
    return f"python -m minilm.{command.replace('-', '_')}"


def command_for(command: str) -> str:
    """The command line that starts `command`, spelled the way this process was started: what a
    job prints as the next thing to run."""
    script = Path(sys.argv[0]).name
    if script.startswith("minilm-"):
        return f"minilm-{command}"
    if script.startswith("train_") and command in JOB_SCRIPTS:
        return f"python train_{command}.py"
    return f"python -m minilm.{command.replace('-', '_')}"


class OneLineErrors(argparse.ArgumentParser):
    """argparse, but a bad flag is one `error:` line like every other user error (argparse's own
    error prints the whole usage block first, 30 lines for the jobs)."""

    def error(self, message: str) -> None:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def make_parser(command: str, description: str) -> argparse.ArgumentParser:
    return OneLineErrors(prog=program_name(command), description=description)


def parse_config(cls: type, command: str, description: str, argv: list[str] | None) -> Any:
    """For a command whose flags are exactly the fields of one config dataclass: argv -> cls."""
    parser = make_parser(command, description)
    add_flags(parser, cls, command.replace("-", " "))
    return cls(**values_for(parser.parse_args(argv), cls))


def check_numbers(config: Any) -> None:
    """Refuse a NaN or infinite value in any float field of a config dataclass: argparse reads
    "nan" and "inf" as floats, and no comparison catches NaN (`nan <= 0` is False), so a
    `--lr nan` would reach the optimizer and a `--max-time nan` would never end."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if _base_type(f.type) is float and isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{flag_name(f.name)} must be a finite number, got {value}")
        if f.name == "seed" and value is not None and abs(value) >= 2**63:
            raise UserError(f"--seed must be below 2**63 (what torch's generators take), got {value}")


def values_for(args: argparse.Namespace, cls: type, skip: tuple[str, ...] = (),
               given_only: bool = False) -> dict[str, Any]:
    """The parsed values of cls's fields; with given_only, only flags the user actually set."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
              if f.name not in skip and hasattr(args, f.name)}
    return {k: v for k, v in values.items() if v is not None} if given_only else values


def command_line() -> str:
    """The command that started this process, for config.json (so a run can be repeated)."""
    return " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv])
