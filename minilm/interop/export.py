"""`python -m minilm.export` (or `minilm-export`): take a model elsewhere, or bring one in.

    python -m minilm.export --ckpt out/finetune --to hf out/hf        transformers dir (a classifier: --pooling last)
    python -m minilm.export --ckpt out/pretrain --to onnx out/onnx    ONNX Runtime graph
    python -m minilm.export --from-hf path/to/hf_dir out/imported     back into a minilm dir
"""

from __future__ import annotations

import argparse
from pathlib import Path

from minilm.common.errors import UserError, exit_on_user_error
from minilm.common.flags import make_parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = make_parser("export", __doc__.splitlines()[0])
    parser.formatter_class, parser.epilog = argparse.RawDescriptionHelpFormatter, "\n".join(__doc__.splitlines()[2:])
    parser.add_argument("out", nargs="?", help="the dir to write (or --out)")
    parser.add_argument("--out", dest="out_flag", metavar="OUT", help="the dir to write, as in the other commands")
    parser.add_argument("--ckpt", help="a minilm checkpoint dir (pretrain or finetune) to export")
    parser.add_argument("--to", choices=("hf", "onnx"), help="with --ckpt: the format to write")
    parser.add_argument("--from-hf", metavar="HF_DIR", help="a local Hugging Face dir to import instead")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of a non-empty out dir")
    return parser.parse_args(argv)


@exit_on_user_error
def main(args: argparse.Namespace) -> None:
    if bool(args.ckpt) == bool(args.from_hf):
        raise UserError("pass either --ckpt DIR --to hf|onnx (export) or --from-hf HF_DIR (import)")
    if args.ckpt and not args.to:
        raise UserError("--ckpt needs --to hf or --to onnx")
    if bool(args.out) == bool(args.out_flag):
        raise UserError("name the dir to write once: `... OUT` or `--out OUT`")
    out = Path(args.out or args.out_flag)
    check_export_target(out, Path(args.ckpt or args.from_hf), args.overwrite)
    if args.from_hf:
        from minilm.interop.hf_import import import_hf
        print(f"imported a {import_hf(args.from_hf, out)} into {out}")
    elif args.to == "hf":
        from minilm.interop.hf_export import export_hf
        arch = export_hf(args.ckpt, out)
        print(f"wrote {out} ({arch.name}); load it with transformers' Auto classes")
    else:
        from minilm.interop.onnx_export import export_onnx
        print(f"wrote {export_onnx(args.ckpt, out)}")
    if args.ckpt:
        print_window_note(Path(args.ckpt))


def print_window_note(ckpt: Path) -> None:
    """A classifier trained with --long-texts windows reads a long text as windows and averages
    their logits; that loop is minilm's (classifier.split_windows), not part of the exported graph."""
    from minilm.checkpoint import read_config
    config = read_config(ckpt)
    classifier = config.get("classifier") or {}
    stride = classifier.get("window_stride", 0) if config.get("kind") == "finetune" else 0
    if stride:
        T = config["model"]["context_length"]
        print(f"note: this classifier reads texts longer than {T} tokens as windows of {T} tokens, {stride} apart "
              f"(at most {classifier['max_windows']}), and averages their logits; the exported model reads one window: "
              f"do the same split and average around it, or truncate")


def check_export_target(out: Path, source: Path, overwrite: bool) -> None:
    """The dir to write must not be the source (or inside it), must not hold a minilm run (that
    --overwrite would silently turn into a mix of two models), and is replaced only with --overwrite."""
    if out.resolve() == source.resolve():
        raise UserError(f"{out} is the dir it would be made from ({source}); write to another dir")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; choose a dir to write")
    if (out / "config.json").is_file() and (out / "model.pt").is_file():
        raise UserError(f"{out} holds a minilm checkpoint, which an export must not mix into; choose another dir")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} exists and is not an empty dir; pass --overwrite or choose another dir")


def cli(argv: list[str] | None = None) -> None:
    main(parse_args(argv))
