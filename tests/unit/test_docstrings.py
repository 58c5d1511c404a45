"""Every module, class and public function of the project has a docstring:
the rule of SpeechBrain's ``tests/utils/check_docstrings.py``, checked on
the syntax tree (so multi-line signatures and nested functions count too).

Authors
 * speechbrain_dpm developers 2026
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("speechbrain_dpm", "recipes", "experiments", "benchmarks", "tools")


def python_files():
    """The project's Python files that the rule covers (dunder files, such
    as ``__init__.py``, are left out, as in SpeechBrain's check)."""
    files = []
    for folder in FOLDERS:
        files += sorted((ROOT / folder).rglob("*.py"))
    return [p for p in files if "__" not in p.name]


def missing_docstrings(source):
    """Names of the module, classes and public functions without one.

    Example
    -------
    >>> missing_docstrings("def f():\\n    pass\\n")
    ['module', 'function f']
    """
    tree = ast.parse(source)
    missing = [] if ast.get_docstring(tree) else ["module"]
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            kind = "class"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name.startswith("_"):
                continue
            kind = "function"
        else:
            continue
        if ast.get_docstring(node) is None:
            missing.append(f"{kind} {node.name}")
    return missing


@pytest.mark.parametrize(
    "path", python_files(), ids=lambda p: str(p.relative_to(ROOT))
)
def test_docstrings(path):
    missing = missing_docstrings(path.read_text(encoding="utf-8"))
    assert not missing, f"{path}: no docstring for {missing}"
