"""The shape of the code: no function in gateway/ over 50 lines and no module over 400 lines without a reason.

A reason is a comment starting with ``# long:``: for a function, on its ``def`` line or in the comment lines just
above it (or above its decorators); for a module, among its first lines. Branches are ruff's business (C901, at
12, in pyproject.toml).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 50
MAX_MODULE_LINES = 400
MODULE_REASON_WITHIN = 20  # lines from the top
REASON = re.compile(r"^\s*#\s*long:", re.IGNORECASE)
INLINE_REASON = re.compile(r"#\s*long:", re.IGNORECASE)


def _comment_above(lines: list[str], lineno: int) -> bool:
    """A ``# long:`` comment on line ``lineno`` (1-based) or in the run of comment lines just above it."""
    if INLINE_REASON.search(lines[lineno - 1]):
        return True
    i = lineno - 2
    while i >= 0 and lines[i].lstrip().startswith("#"):
        if REASON.match(lines[i]):
            return True
        i -= 1
    return False


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int, int]]:
    """(name, def line, length in lines) of each function over ``limit`` lines that gives no reason."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        assert node.end_lineno is not None
        length = node.end_lineno - node.lineno + 1
        if length <= limit:
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        if _comment_above(lines, node.lineno) or _comment_above(lines, first):
            continue
        found.append((node.name, node.lineno, length))
    return found


def long_module(source: str, limit: int = MAX_MODULE_LINES) -> int | None:
    """The module's length when over ``limit`` lines with no ``# long:`` comment near its top, else None."""
    lines = source.splitlines()
    if len(lines) <= limit or any(REASON.match(line) for line in lines[:MODULE_REASON_WITHIN]):
        return None
    return len(lines)


def _sources(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def test_no_gateway_function_is_over_50_lines_without_a_reason() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)"
        for path in _sources("gateway")
        for name, line, length in long_functions(path.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize("package", ["gateway", "simulators", "experiments", "reports"])
def test_no_module_is_over_400_lines_without_a_reason(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} ({length} lines)"
        for path in _sources(package)
        if (length := long_module(path.read_text())) is not None
    ]
    assert offenders == []


def _function(body_lines: int, *, above: str = "", decorator: str = "", on_def: str = "") -> str:
    body = "".join(f"    x{i} = {i}\n" for i in range(body_lines))
    return f"{above}{decorator}def f():{on_def}\n{body}"


def test_a_long_function_is_found_and_a_reason_excuses_it() -> None:
    assert long_functions(_function(49)) == []  # 50 lines with its def
    assert long_functions(_function(50)) == [("f", 1, 51)]
    assert long_functions(_function(50, above="# Plain comment.\n")) == [("f", 2, 51)]
    assert long_functions(_function(50, above="# Long: one table.\n")) == []
    assert long_functions(_function(50, above="# long: one table,\n# read whole.\n")) == []
    assert long_functions(_function(50, above="# long: one table.\n", decorator="@decorated\n")) == []
    assert long_functions(_function(50, on_def="  # long: one table.")) == []
    assert long_functions(_function(50, above="# long: too far.\nx = 1\n")) == [("f", 3, 51)]


def test_a_long_module_is_found_and_a_reason_at_its_top_excuses_it() -> None:
    body = "".join(f"x{i} = {i}\n" for i in range(401))
    assert long_module("x = 0\n" * 400) is None
    assert long_module(body) == 401
    assert long_module('"""Doc."""\n\n# long: one table of constants.\n' + body) is None
    assert long_module("x = 0\n" * 30 + "# long: too low.\n" + body) == 432
