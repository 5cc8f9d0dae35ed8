"""The docs stay honest: links resolve, named code exists, and every "try it" block runs.

Conventions the Markdown follows (docs/README.md states them for writers):

- A code reference is one or more names in backticks, then " in ", then a relative link to the
  .py file: "`CausalSelfAttention._explicit` in [minilm/model/attention.py](../minilm/model/attention.py)",
  or "`lr_at`, `param_groups` and `Trainer.step` in [...](...)", line breaks allowed, each name
  optionally followed by a remark in parentheses. A name is a top-level function, class or
  constant of that file, or "Class.member" for a method or class attribute.
- A runnable example is a fenced block opened with ```bash try-it or ```python try-it. The
  test runs them from the repository root with OMP_NUM_THREADS=1, after two substitutions:
  "/tmp/" becomes a fresh temporary dir, and --max-steps, --epochs and --find-lr-steps are
  capped (CAPS below) so the whole file runs in well under a minute. The bash block that
  pretrains the tiny checkpoint (it writes --out /tmp/doc_tiny) runs first, once; every
  python block runs after it, all of them in one interpreter (each in a fresh namespace), so
  torch is imported once. Plain ```bash blocks (long measured runs) are not run.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md")) + sorted(ROOT.glob("README*.md"))
DOCS = [p for p in DOCS if p.is_file()]

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
NAME = r"`[A-Za-z_][\w.]*`(?:\s+\([^()]*\))?"  # a name, optionally followed by a remark in parentheses
SEP = r"(?:,\s+and\s+|,\s+or\s+|,\s+|\s+and\s+|\s+or\s+)"
CODE_REF = re.compile(rf"((?:{NAME}{SEP})*{NAME})\s+in\s+\[[^\]]*\]\(([^)#\s]+\.py)(?:#L\d+)?\)")
BLOCK = re.compile(r"^```(bash|python) try-it\n(.*?)^```", re.MULTILINE | re.DOTALL)
CAPS = {"--max-steps": 20, "--epochs": 1, "--find-lr-steps": 10}
SETUP_MARK = "--out /tmp/doc_tiny"  # the block that makes the checkpoint the others read
TIMEOUT = 180


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- links and names ----------------------------------------------------------------------------


def relative_links(md: Path) -> list[str]:
    """Link targets in md that are files of this repository (no URLs, no in-page anchors)."""
    text = re.sub(r"^```.*?^```", "", md.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("md", DOCS, ids=rel)
def test_relative_links_point_to_files_that_exist(md):
    missing = [t for t in relative_links(md) if not (md.parent / t.split("#")[0]).exists()]
    assert not missing, f"{rel(md)} links to missing files: {missing}"


def defined_names(py: Path) -> set[str]:
    """Top-level functions, classes and assigned names, plus Class.member for each class body."""
    names: set[str] = set()
    for node in ast.parse(py.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}.{member.name}")
                elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
                    names.add(f"{node.name}.{member.target.id}")
                elif isinstance(member, ast.Assign):
                    names.update(f"{node.name}.{t.id}" for t in member.targets if isinstance(t, ast.Name))
    return names


def code_refs(md: Path) -> list[tuple[str, str]]:
    """(name, link target) for every "`name` in [file](path.py)" of md."""
    refs = []
    for m in CODE_REF.finditer(md.read_text(encoding="utf-8")):
        names = re.sub(r"\([^()]*\)", "", m.group(1))  # remarks in parentheses name nothing
        refs.extend((name, m.group(2)) for name in re.findall(r"`([^`]+)`", names))
    return refs


@pytest.mark.parametrize("md", DOCS, ids=rel)
def test_named_functions_and_classes_exist_in_the_linked_file(md):
    bad = []
    for name, target in code_refs(md):
        py = md.parent / target
        if not py.is_file():
            bad.append(f"{name}: {target} does not exist")
        elif name not in defined_names(py):
            bad.append(f"{name}: not defined in {target}")
    assert not bad, f"{rel(md)}: " + "; ".join(bad)


def test_the_walkthrough_links_code_and_tests():
    refs = code_refs(ROOT / "docs" / "walkthrough.md")
    assert sum(t.startswith("../minilm/") for _, t in refs) >= 30
    assert sum(t.startswith("../tests/") for _, t in refs) >= 12


# -- try-it blocks ------------------------------------------------------------------------------


def try_it_blocks() -> list[tuple[str, str, str]]:
    """(id "file:line", language, code) of every try-it block, in document order."""
    blocks = []
    for md in DOCS:
        text = md.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            blocks.append((f"{rel(md)}:{line}", m.group(1), m.group(2)))
    return blocks


def sandboxed(code: str, sandbox: Path) -> str:
    """/tmp/ -> the sandbox dir; step and epoch counts capped (see the module docstring)."""
    code = code.replace("/tmp/", f"{sandbox}/")
    for flag, cap in CAPS.items():
        code = re.sub(rf"{flag} (\d+)", lambda m, f=flag, c=cap: f"{f} {min(int(m.group(1)), c)}", code)
    return code


def run(cmd: list[str], what: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


BLOCKS = try_it_blocks()
SETUP = [b for b in BLOCKS if b[1] == "bash" and SETUP_MARK in b[2]]
BASH = [b for b in BLOCKS if b[1] == "bash" and b not in SETUP]
PYTHON = [b for b in BLOCKS if b[1] == "python"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """A temp dir standing for /tmp, holding the tiny checkpoint the setup block pretrains."""
    path = tmp_path_factory.mktemp("docs_tmp")
    assert len(SETUP) == 1, f"expected one try-it block with {SETUP_MARK!r}, found {len(SETUP)}"
    where, _, code = SETUP[0]
    run(["bash", "-e", "-o", "pipefail", "-c", sandboxed(code, path)], where)
    assert (path / "doc_tiny" / "model.pt").is_file()
    return path


def test_there_are_try_it_blocks_of_both_kinds():
    assert len(BASH) >= 4 and len(PYTHON) >= 8


@pytest.mark.parametrize("block", BASH, ids=[b[0] for b in BASH])
def test_bash_try_it_runs(block, sandbox):
    where, _, code = block
    if "minilm.attention_map" in code and importlib.util.find_spec("matplotlib") is None:
        pytest.skip("drawing needs matplotlib")
    run(["bash", "-e", "-o", "pipefail", "-c", sandboxed(code, sandbox)], where)


def test_python_try_its_run(sandbox):
    """All python blocks in one interpreter, each in its own namespace, named by file:line."""
    script = ["import sys"]
    for where, _, code in PYTHON:
        script.append(f"print('### {where}', flush=True)")
        script.append(f"exec(compile({sandboxed(code, sandbox)!r}, {where!r}, 'exec'), {{'__name__': '__main__'}})")
    out = run([sys.executable, "-c", "\n".join(script)], "the python try-it blocks")
    assert out.count("### ") == len(PYTHON)
