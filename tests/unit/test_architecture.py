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


def _imported(path: Path, root: Path = ROOT) -> set[str]:
    """Dotted names a module imports (``from a import b`` gives ``a.b``), relative imports
    resolved against the module's own package."""
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


# Which chalicelib packages each layer may import (besides the standard library and third
# parties, which the other tests police): app.py -> bootstrap, http, domain; http -> domain,
# services.clock, webhooks; services -> domain, config, webhooks, services; adapters -> domain,
# config, adapters; webhooks -> domain, webhooks; only bootstrap sees everything.
LAYERS: dict[str, set[str]] = {
    "app": {"chalicelib.bootstrap", "chalicelib.http", "chalicelib.domain"},
    "chalicelib.http": {"chalicelib.domain", "chalicelib.services", "chalicelib.webhooks"},
    "chalicelib.services": {
        "chalicelib.domain",
        "chalicelib.config",
        "chalicelib.webhooks",
        "chalicelib.services",
    },
    "chalicelib.adapters": {"chalicelib.domain", "chalicelib.config", "chalicelib.adapters"},
    "chalicelib.webhooks": {"chalicelib.domain", "chalicelib.webhooks"},
    "chalicelib.config": {"chalicelib.domain", "chalicelib.settings"},
    "chalicelib.settings": set(),
    "chalicelib.statemachine": set(),
}


def _layer(module: str) -> str | None:
    return next(
        (layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), None
    )


def _violations(files: list[Path], root: Path = ROOT) -> list[str]:
    found = []
    for path in files:
        own = ".".join(path.relative_to(root).with_suffix("").parts)
        layer = _layer(own)
        if layer is None:
            continue
        for target in sorted(_imported(path, root)):
            if not target.startswith(("chalicelib", "app")) or target == "app":
                continue
            if not any(target == a or target.startswith(a + ".") for a in LAYERS[layer]):
                found.append(f"{own} imports {target}")
    return found


def test_each_layer_imports_only_the_layers_below_it() -> None:
    files = [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]
    assert _violations(files) == []


def test_only_the_composition_root_imports_the_adapters() -> None:
    importers = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in [ROOT / "app.py", *(ROOT / "chalicelib").rglob("*.py")]
        if any(t.startswith("chalicelib.adapters") for t in _imported(path))
        and "adapters" not in path.parts
    )
    assert importers == ["chalicelib.bootstrap"]


def test_the_layer_check_catches_a_service_importing_an_adapter(tmp_path: Path) -> None:
    probe = tmp_path / "chalicelib" / "services" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from ..adapters import dynamo\nfrom ..domain import model\n")
    assert _violations([probe], tmp_path) == [
        "chalicelib.services.probe imports chalicelib.adapters.dynamo"
    ]
