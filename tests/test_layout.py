"""The package's architecture, checked: layers depend downward only, the model layer needs torch
alone, and the installed package holds every subpackage."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "minilm"

# Lower layers never import higher ones. Two layers of the same rank do not import each other.
LAYER_RANK = {"model": 0, "common": 1, "text": 2, "reviews": 2, "checkpoint": 3, "tools": 4, "interop": 5,
              "train": 6}
COMMAND_RANK = 7  # the top-level modules `python -m minilm.<command>` runs


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def minilm_imports(path: Path) -> set[str]:
    """The minilm modules a file imports at module level (not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("minilm"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("minilm"))
    return found


def layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    if len(parts) == 1:
        return "minilm", -1  # the package itself: its __init__ is checked on its own below
    if parts[1] in LAYER_RANK:
        return parts[1], LAYER_RANK[parts[1]]
    return parts[1], COMMAND_RANK


def all_modules() -> dict[str, set[str]]:
    return {module_name(p): minilm_imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_import_points_down_or_within_its_own_layer():
    wrong = []
    for module, imports in all_modules().items():
        layer, rank = layer_of(module)
        for target in imports:
            target_layer, target_rank = layer_of(target)
            if target_layer != layer and target_rank >= rank and layer != "minilm":
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports that point up or sideways: " + "; ".join(wrong)


def test_there_are_no_import_cycles():
    graph = all_modules()
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                pytest.fail("import cycle: " + " -> ".join([*path, module, target]))
            if target in graph and target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [])


def test_the_model_layer_imports_torch_only():
    """A fresh interpreter: `import minilm` and the whole model layer bring in no other minilm
    layer and no sentencepiece (numpy and tqdm prove nothing: torch itself imports them)."""
    code = ("import sys, minilm, minilm.model.gpt, minilm.model.classifier, minilm.model.sampling\n"
            "print('\\n'.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=ROOT).stdout.split()
    outside = [m for m in loaded if m.startswith("minilm.") and not m.startswith("minilm.model")]
    assert not outside, f"the model layer pulled in {outside}"
    assert "sentencepiece" not in loaded
    assert "minilm.model.gpt" in loaded  # the check looked at the right interpreter


def test_a_built_wheel_holds_every_subpackage(tmp_path):
    """A plain (non-editable) install gets what an editable one sees: every folder with Python files."""
    pytest.importorskip("setuptools")
    source = tmp_path / "source"  # a copy, so the build leaves nothing behind in the checkout
    shutil.copytree(PACKAGE, source / "minilm", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(source)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("minilm-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")}
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
