"""The webhook layer stays pure: a short list of standard-library modules, nothing that can
start a process, open a file or reach the network."""

from __future__ import annotations

import ast
from pathlib import Path

WEBHOOKS = Path(__file__).resolve().parents[3] / "chalicelib" / "webhooks"
ALLOWED = {
    "__future__",
    "collections",
    "dataclasses",
    "hashlib",
    "hmac",
    "json",
    "re",
    "typing",
    "urllib",
}
ALLOWED_FROM_URLLIB = {"urllib.parse"}


def _imports(path: Path) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


def test_webhooks_imports_only_a_few_standard_modules_and_itself() -> None:
    files = sorted(WEBHOOKS.glob("*.py"))
    assert len(files) >= 6
    offenders = []
    for path in files:
        for module, level in _imports(path):
            if level == 1:
                continue  # a sibling module of chalicelib.webhooks
            top = module.split(".")[0]
            if level == 0 and top in ALLOWED and (top != "urllib" or module in ALLOWED_FROM_URLLIB):
                continue
            offenders.append(f"{path.name}: {'.' * level}{module}")
    assert offenders == []


def test_webhooks_never_calls_eval_exec_or_open() -> None:
    offenders = []
    for path in sorted(WEBHOOKS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"eval", "exec", "open", "compile", "__import__"}
            ):
                offenders.append(f"{path.name}:{node.lineno} {node.func.id}()")
    assert offenders == []
