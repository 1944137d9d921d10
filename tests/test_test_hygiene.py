"""The test suite's own rules: a comparison loop cannot pass empty or short.

Every `zip(...)` in tests/ passes `strict=True`: a zip over two lists of losses (or tensors)
stops at the shorter one, so a run that logged nothing would compare nothing and pass.
"""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def lax_zips():
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "zip":
                strict = [k for k in node.keywords if k.arg == "strict"]
                if not (strict and isinstance(strict[0].value, ast.Constant) and strict[0].value.value is True):
                    yield f"{path.relative_to(TESTS.parent)}:{node.lineno}"


def test_every_zip_in_the_tests_is_strict():
    assert list(lax_zips()) == []
