"""The layer contracts and the size limits hold, and the contracts fail when a layer is crossed; every type: ignore
names the error it silences and says why."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("kernel", "ingestion", "retrieval", "evals", "rag")
MAX_MODULE_LINES = 400
MAX_PARAMETERS = 6
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
TYPE_CHECKED = (*PACKAGES, "bench", "tests")
TYPE_IGNORE = re.compile(r"type:\s*ignore")
# Error codes in brackets, then a `#` reason: an ignore without a code silences every error on its line.
EXPLAINED_TYPE_IGNORE = re.compile(r"type:\s*ignore\[[\w-]+(?:,\s*[\w-]+)*\]\s*#\s*\S")


def modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )


def test_no_module_is_longer_than_the_limit() -> None:
    long = {str(p.relative_to(REPO)): n for p in modules() if (n := p.read_text().count("\n")) > MAX_MODULE_LINES}
    assert not long, f"split these modules (over {MAX_MODULE_LINES} lines): {long}"


def _is_cli_command(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    # A typer command's parameters are its option declarations, and typer cannot take a dataclass.
    return any(
        isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "command"
        for d in node.decorator_list
    )


def test_no_function_takes_more_than_six_parameters() -> None:
    crowded = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or _is_cli_command(node):
                continue
            a = node.args
            names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs) if x.arg not in ("self", "cls")]
            if len(names) > MAX_PARAMETERS:
                crowded.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({len(names)})")
    assert not crowded, f"take a dataclass instead: {crowded}"


def test_the_layer_contracts_hold() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "complaint"),
    [
        ("retrieval/search.py", "import rag.services", "retrieval is not allowed to import rag"),
        ("kernel/text.py", "import ingestion.chunk", "kernel is not allowed to import ingestion"),
        ("evals/online.py", "import retrieval.rerank", "evals is not allowed to import retrieval"),
    ],
)
def test_crossing_a_layer_breaks_the_contract(tmp_path: Path, module: str, line: str, complaint: str) -> None:
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("models", "static", "__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # added by the test\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert complaint in result.stdout, result.stdout


def unexplained_type_ignores(root: Path) -> list[str]:
    found = []
    for path in sorted(p for top in TYPE_CHECKED for p in (root / top).rglob("*.py")):
        with path.open("rb") as source:
            # Comments only: the patterns above, as strings, are not ignores.
            for token in tokenize.tokenize(source.readline):
                if token.type != tokenize.COMMENT or not TYPE_IGNORE.search(token.string):
                    continue
                if not EXPLAINED_TYPE_IGNORE.search(token.string):
                    found.append(f"{path.relative_to(root)}:{token.start[0]} {token.string}")
    return found


def test_every_type_ignore_has_a_code_and_a_reason() -> None:
    bare = unexplained_type_ignores(REPO)
    assert not bare, f"write `# type: ignore[code]  # reason`: {bare}"
