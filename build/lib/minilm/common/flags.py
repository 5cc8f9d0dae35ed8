"""Command-line flags made from config dataclasses: one field, one flag, its help from the field.

    field `max_steps: int = option(3000, "total optimizer steps")`  ->  --max-steps 3000

Booleans become --flag / --no-flag. A field's `choices` become argparse choices. Because the
flags are generated, `--help` lists every knob the dataclass has, with the same words.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from typing import Any


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
        default = None if defaults_from_elsewhere else f.default
        help_text = f.metadata["help"]
        if not defaults_from_elsewhere and f.default is not dataclasses.MISSING:
            help_text += f" (default: {f.default})"
        if kind is bool:
            group.add_argument(flag_name(f.name), action=argparse.BooleanOptionalAction, default=default,
                               help=help_text)
        elif kind is list:  # a list of strings: --predict "one text" "another text"
            group.add_argument(flag_name(f.name), nargs="+", default=default, help=help_text, metavar="TEXT")
        else:
            group.add_argument(flag_name(f.name), type=kind, default=default, help=help_text,
                               choices=f.metadata.get("choices"), metavar=f.name.upper())


def values_for(args: argparse.Namespace, cls: type, skip: tuple[str, ...] = (),
               given_only: bool = False) -> dict[str, Any]:
    """The parsed values of cls's fields; with given_only, only flags the user actually set."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
              if f.name not in skip and hasattr(args, f.name)}
    return {k: v for k, v in values.items() if v is not None} if given_only else values


def command_line() -> str:
    """The command that started this process, for config.json (so a run can be repeated)."""
    return " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv])
