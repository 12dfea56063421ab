"""Layering rules: the domain is pure; app.py only translates."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STDLIB = set(sys.stdlib_module_names)


def imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                (alias.name, node.level if hasattr(node, "level") else 0) for alias in node.names
            ]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


def test_domain_imports_only_the_standard_library_and_itself() -> None:
    files = sorted((ROOT / "chalicelib" / "domain").glob("*.py"))
    assert files, "no domain modules found"
    offenders = []
    for path in files:
        for module, level in imports(path):
            top = module.split(".")[0]
            if level >= 1 and level == 1:
                continue  # relative import inside chalicelib/domain
            if level == 0 and (top in STDLIB or top == "__future__"):
                continue
            offenders.append(f"{path.name}: {'.' * level}{module}")
    assert offenders == []


def test_the_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import boto3\nfrom ..adapters import dynamo\n")
    found = imports(bad)
    assert ("boto3", 0) in found and ("adapters", 2) in found


def test_only_adapters_and_the_composition_root_touch_aws_libraries() -> None:
    aws = {"boto3", "botocore", "pynamodb", "aws_lambda_powertools"}
    allowed = {"adapters", "bootstrap.py"}
    offenders = []
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        rel = path.relative_to(ROOT / "chalicelib")
        if rel.parts[0] in allowed:
            continue
        for module, level in imports(path):
            if level == 0 and module.split(".")[0] in aws:
                offenders.append(f"{rel}: {module}")
    assert offenders == []


def test_app_py_does_no_aws_calls_itself() -> None:
    mods = {m.split(".")[0] for m, level in imports(ROOT / "app.py") if level == 0}
    assert not mods & {"boto3", "botocore", "pynamodb"}
