"""Run every benchmark in bench/ in turn: ``python -m bench [name ...]``.

A benchmark is any module of this package (not starting with ``_``) that defines ``main()``;
new ones (``bench/rollout.py``, ...) are picked up without editing this file. A module may also
define ``prepare() -> int``, run here first to build what it measures when that is missing (as
every make target installs what it needs); a non-zero answer skips the benchmark. Each runs in its
own interpreter (``python -m bench.<name>``) because every benchmark starts an embedded stack,
which patches moto, botocore and Chalice process-wide; a fresh process keeps them independent.
The exit status is the first non-zero one, or 0.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent


def discover() -> list[str]:
    """Names of the benchmark modules (those with a callable ``main``), sorted."""
    names = []
    for info in pkgutil.iter_modules([str(PACKAGE_DIR)]):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"bench.{info.name}")  # modules do no work at import
        if callable(getattr(module, "main", None)):
            names.append(info.name)
    return sorted(names)


def main(argv: Sequence[str] | None = None) -> int:
    wanted = list(sys.argv[1:] if argv is None else argv)
    available = discover()
    unknown = [name for name in wanted if name not in available]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {available}", file=sys.stderr)
        return 2
    status = 0
    for name in wanted or available:
        print(f"=== bench.{name} ===", flush=True)
        started = time.monotonic()
        prepare = getattr(importlib.import_module(f"bench.{name}"), "prepare", None)
        code = prepare() if callable(prepare) else 0
        if code == 0:
            code = subprocess.call([sys.executable, "-m", f"bench.{name}"], cwd=ROOT)
        print(f"=== bench.{name}: exit {code} after {time.monotonic() - started:.0f} s ===\n")
        status = status or code
    return status


if __name__ == "__main__":
    sys.exit(main())
