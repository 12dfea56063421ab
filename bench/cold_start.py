"""What a Lambda cold start pays to import Roadie, against importing boto3 alone.

``python -m bench.cold_start [ZIP] [--runs 7] [--python PATH] [--no-importtime]``

ZIP is the package ``make package`` builds (default ``out/deployment.zip``; without it the
benchmark says so and exits 2). It is unzipped into a temporary directory (file times kept, as
``unzip`` does, so that timestamp-checked ``.pyc`` stay valid) and three copies are measured:

- ``shipped``: the package as it is;
- ``no .pyc``: every ``__pycache__`` and ``.pyc`` deleted (what a package without bytecode costs);
- ``compiled``: every ``.py`` compiled here (unchecked-hash ``.pyc``, valid whatever the file
  times), i.e. what shipping precompiled bytecode would buy.

Each import runs in a fresh interpreter, ``python -S -c "import app"`` (and ``import boto3``, and
``pass`` for the interpreter's own start-up) with the copy as working directory and
``PYTHONPATH``, ``PYTHONDONTWRITEBYTECODE=1`` so no run writes bytecode for the next, and a
minimal environment (``AWS_DEFAULT_REGION``, dummy credentials, an unroutable endpoint). ``-S``
leaves the package and the standard library as the only places to import from, so a module the
package lacks fails instead of being found in this venv. The runs are interleaved (one of each per
round, after one untimed round) and the medians printed; the goal is ``import app`` at most 1.2x
``import boto3``.

A probe run reports what ``import app`` did besides importing: botocore clients created and API
calls made (STYLE.md: none at import), and any module loaded from outside the package and the
standard library. ``-X importtime`` of ``import boto3`` and ``import app`` then shows where the
time goes: the modules ``import app`` loads beyond ``import boto3``, their own time summed by
top-level package.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.util import MAGIC_NUMBER
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = ROOT / "out" / "deployment.zip"
GOAL = 1.2
STATEMENTS = {"python": "pass", "boto3": "import boto3", "app": "import app"}

# Run inside the unzipped package: counts what ``import app`` does beyond importing.
PROBE = r"""
import json, sys, sysconfig
import botocore.client, botocore.session
created, calls = [], []
_create = botocore.session.Session.create_client
def create_client(self, service_name, *args, **kwargs):
    created.append(service_name)
    return _create(self, service_name, *args, **kwargs)
botocore.session.Session.create_client = create_client
_call = botocore.client.BaseClient._make_api_call
def make_api_call(self, operation_name, api_params):
    calls.append(f"{self.meta.service_model.service_name}.{operation_name}")
    return _call(self, operation_name, api_params)
botocore.client.BaseClient._make_api_call = make_api_call
import app
package, stdlib = sys.path[0], sysconfig.get_paths()["stdlib"]
outside = sorted(
    name for name, module in sys.modules.items()
    if (path := getattr(module, "__file__", None))
    and not path.startswith((package, stdlib))
)
print(json.dumps({"clients": created, "calls": calls, "outside": outside,
                  "modules": len(sys.modules)}))
"""


@dataclass(frozen=True)
class Tree:
    files: int
    bytes: int
    py: int
    pyc: int
    pyc_hash_based: int
    pyc_stale: int  # timestamp-checked .pyc whose source time or size no longer match


def extract(zip_path: Path, dest: Path) -> None:
    """Unzip keeping each file's time (zipfile alone stamps every file "now")."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            path = Path(archive.extract(info, dest))
            if not info.is_dir():
                stamp = time.mktime((*info.date_time, 0, 0, -1))
                os.utime(path, (stamp, stamp))


def survey(directory: Path) -> Tree:
    files = size = py = pyc = hashed = stale = 0
    for path in directory.rglob("*"):
        if not path.is_file():
            continue
        files += 1
        size += path.stat().st_size
        if path.suffix == ".py":
            py += 1
        elif path.suffix == ".pyc":
            pyc += 1
            header = path.read_bytes()[:16]
            if int.from_bytes(header[4:8], "little") & 1:
                hashed += 1
                continue
            source = _source_of(path)
            if header[:4] != MAGIC_NUMBER or source is None:
                stale += 1
                continue
            st = source.stat()
            mtime = int.from_bytes(header[8:12], "little")
            length = int.from_bytes(header[12:16], "little")
            if mtime != int(st.st_mtime) & 0xFFFFFFFF or length != st.st_size & 0xFFFFFFFF:
                stale += 1
    return Tree(files, size, py, pyc, hashed, stale)


def _source_of(pyc: Path) -> Path | None:
    if pyc.parent.name == "__pycache__":
        candidate = pyc.parent.parent / (pyc.name.split(".", 1)[0] + ".py")
    else:
        candidate = pyc.with_suffix(".py")
    return candidate if candidate.exists() else None


def strip_bytecode(directory: Path) -> None:
    for cache in [p for p in directory.rglob("__pycache__") if p.is_dir()]:
        shutil.rmtree(cache)
    for pyc in directory.rglob("*.pyc"):
        pyc.unlink()


def compile_tree(directory: Path, python: str) -> None:
    """Bytecode for every module, by the interpreter that will run it (same magic number)."""
    flags = ["-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    subprocess.run(
        [python, "-m", "compileall", *flags, str(directory)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def environment(directory: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(directory),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens: no real AWS, ever
        "LANG": "C.UTF-8",
    }


def run_once(python: str, directory: Path, statement: str, *flags: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [python, "-S", *flags, "-c", statement],
        cwd=directory,
        env=environment(directory),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"`{statement}` failed in {directory}:\n{done.stderr[-3000:]}")
    return elapsed, done.stderr


def measure(python: str, copies: dict[str, Path], runs: int) -> dict[str, dict[str, list[float]]]:
    """Interleaved: each round runs every statement in every copy once (after an untimed round)."""
    times: dict[str, dict[str, list[float]]] = {c: defaultdict(list) for c in copies}
    for round_ in range(runs + 1):
        for copy, directory in copies.items():
            for key, statement in STATEMENTS.items():
                elapsed, _ = run_once(python, directory, statement)
                if round_:
                    times[copy][key].append(elapsed)
    return times


def probe(python: str, directory: Path) -> dict[str, object]:
    _, _ = run_once(python, directory, "pass")
    done = subprocess.run(
        [python, "-S", "-c", PROBE],
        cwd=directory,
        env=environment(directory),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def self_times(python: str, directory: Path, statement: str, runs: int) -> dict[str, float]:
    """``-X importtime``: each module's own import time (us), median over ``runs`` runs."""
    samples: dict[str, list[int]] = defaultdict(list)
    for _ in range(runs):
        _, stderr = run_once(python, directory, statement, "-X", "importtime")
        for line in stderr.splitlines():
            if line.startswith("import time:") and "self [us]" not in line:
                own, _, name = line[len("import time:") :].split("|")
                samples[name.strip()].append(int(own))
    return {module: statistics.median(values) for module, values in samples.items()}


def beyond_boto3(python: str, directory: Path, runs: int) -> tuple[float, float, list[str]]:
    """(boto3's import, app's import, what app loads that boto3 does not, by package), in ms."""
    boto3 = self_times(python, directory, "import boto3", runs)
    app = self_times(python, directory, "import app", runs)
    by_package: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for module, us in app.items():
        if module not in boto3:
            by_package[module.split(".")[0]] += us
            count[module.split(".")[0]] += 1
    ranked = sorted(by_package.items(), key=lambda kv: -kv[1])
    return (
        sum(boto3.values()) / 1000,
        sum(app.values()) / 1000,
        [f"{name} {us / 1000:.1f} ({count[name]})" for name, us in ranked],
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def report_tree(label: str, tree: Tree) -> str:
    pyc = "no .pyc"
    if tree.pyc:
        pyc = f"{tree.pyc} .pyc ({tree.pyc_hash_based} hash-based, {tree.pyc_stale} stale)"
    return (
        f"  {label:<10} {tree.files:>6,} files {tree.bytes / 1e6:7.1f} MB unzipped, "
        f"{tree.py:,} .py, {pyc}"
    )


def prepare() -> int:
    """``python -m bench`` runs this first: build the default package when there is none."""
    if DEFAULT_ZIP.is_file():
        return 0
    print("cold_start: no out/deployment.zip, building it (scripts/package.sh)", flush=True)
    env = {**os.environ, "VENV": sys.prefix}
    return subprocess.call(["bash", str(ROOT / "scripts" / "package.sh")], cwd=ROOT, env=env)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zip", nargs="?", type=Path, default=DEFAULT_ZIP)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per statement and copy")
    parser.add_argument("--python", default=sys.executable, help="interpreter to run the imports")
    parser.add_argument("--no-importtime", action="store_true", help="skip the -X importtime view")
    args = parser.parse_args(argv)
    if not args.zip.is_file():
        print(f"cold_start: no package at {args.zip}: run `make package` first", file=sys.stderr)
        return 2
    python: str = args.python

    print("cold_start: `import app` from the Lambda package against `import boto3`")
    print(
        f"  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    with tempfile.TemporaryDirectory(prefix="roadie-cold-") as tmp:
        shipped = Path(tmp) / "shipped"
        extract(args.zip, shipped)
        stripped = Path(tmp) / "no-pyc"
        shutil.copytree(shipped, stripped, symlinks=True)
        strip_bytecode(stripped)
        compiled = Path(tmp) / "compiled"
        shutil.copytree(stripped, compiled, symlinks=True)
        compile_tree(compiled, python)
        copies = {"shipped": shipped, "no .pyc": stripped, "compiled": compiled}

        built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(args.zip.stat().st_mtime))
        print(f"\n1. The package: {args.zip}, built {built}, {args.zip.stat().st_size:,} bytes")
        for label, directory in copies.items():
            print(report_tree(label, survey(directory)))

        print("\n2. What `import app` does besides importing (probe run, shipped copy)")
        found = probe(python, shipped)
        if "error" in found:
            print(f"  import app FAILED:\n{found['error']}")
            return 1
        print(f"  botocore clients created: {found['clients'] or 'none'}")
        print(f"  AWS API calls: {found['calls'] or 'none'}")
        print(f"  modules from outside the package and the stdlib: {found['outside'] or 'none'}")
        print(f"  modules loaded in all: {found['modules']}")
        if found["clients"] or found["calls"]:
            print("  !! import app builds clients or calls AWS (STYLE.md #4 says it must not)")

        print(f"\n3. Fresh-interpreter imports, {args.runs} interleaved runs each (ms)")
        times = measure(python, copies, args.runs)
        print(
            f"  {'copy':<10} {'':<6} {'python':>8} {'boto3':>8} {'app':>8}  {'app/boto3':>9}"
            f"  {'net of start-up':>15}  goal <= {GOAL}"
        )
        medians: dict[str, dict[str, float]] = {}
        for copy, by_key in times.items():
            for label, pick in (("median", statistics.median), ("min", min)):
                m = {key: pick(values) for key, values in by_key.items()}
                if label == "median":
                    medians[copy] = m
                ratio = m["app"] / m["boto3"]
                net = (m["app"] - m["python"]) / max(m["boto3"] - m["python"], 1e-9)
                verdict = "ok" if ratio <= GOAL else "OVER"
                print(
                    f"  {copy if label == 'median' else '':<10} {label:<6} {_ms(m['python'])}"
                    f" {_ms(m['boto3'])} {_ms(m['app'])}  {ratio:9.2f}  {net:15.2f}  {verdict}"
                )
        gain = medians["no .pyc"]["app"] / medians["compiled"]["app"]
        print(
            f"  precompiled bytecode: `import app` {gain:.1f}x faster than without (medians "
            f"{_ms(medians['no .pyc']['app']).strip()} -> "
            f"{_ms(medians['compiled']['app']).strip()} ms)"
        )
        spread = {
            copy: max(max(v) / min(v) for v in by_key.values()) for copy, by_key in times.items()
        }
        print(
            "  noise, largest max/min of one statement's runs: "
            + ", ".join(f"{copy} {value:.2f}" for copy, value in spread.items())
        )

        if not args.no_importtime:
            runs = max(3, args.runs // 2)
            print(f"\n4. Where the time goes: -X importtime, median of {runs} runs per module (ms)")
            for copy in ("shipped", "compiled"):
                boto3_ms, app_ms, extra = beyond_boto3(python, copies[copy], runs)
                print(
                    f"  {copy}: modules' own time, boto3 {boto3_ms:.1f}, app {app_ms:.1f}; "
                    f"what app loads beyond boto3, by package (modules):"
                )
                print("    " + ", ".join(extra[:12]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
