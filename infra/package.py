"""Builds the one artifact a team deploys and the local stack runs: sam.json + deployment.zip.

Stages, each with its rule:

1. **Config**: the pipeline config is rendered (``${VAR}`` expanded from the packaging
   environment, once, here) and validated; an artifact bound for AWS must also pass
   ``check_deployable`` (no local paths, refs resolvable without git). A bad config fails the
   package, never the first webhook. The rendered text is bundled as
   ``chalicelib/pipeline.toml``; Lambda code never expands variables at run time.
2. **Code**: ``chalice package`` of a staged copy of the code (without the demo config), its
   zip rewritten deterministically with bytecode precompiled for the Lambda runtime (read-only
   ``/var/task`` means Python can never cache it there). Cached by a hash of every input, so
   a second build of unchanged code costs a file copy.
3. **Template**: ``infra.template.build_merge_template(stage, config)`` deep-merged into
   Chalice's template exactly as ``chalice package --merge-template`` would (dicts merged,
   everything else replaced).
4. **Lint** (``make package`` only): cfn-lint on the template, asl-validator on the state
   machine definition.

The result lives in ``<cache>/pkg-<digest>/``; ``make package`` copies it to ``out/``.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalice import __version__ as CHALICE_VERSION
from chalice.package import TemplateDeepMerger

from chalicelib.config import ENV_REF_RE, PipelineConfig, check_deployable, parse_pipeline
from chalicelib.domain.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / ".cache" / "package"
EXAMPLE_CONFIG = ROOT / "infra" / "pipeline.example.toml"
CONFIG_IN_PACKAGE = "chalicelib/pipeline.toml"
# What `chalice package` reads; the pipeline config is bundled separately (stage 1).
CODE_INPUTS = ("app.py", "chalicelib", "requirements.txt", ".chalice")
TEMPLATE_INPUTS = ("infra", "chalicelib")  # the merge template is built from both
TASK_ROOT_FILES = ("app.py", "chalicelib/")
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed: the same inputs give the same zip, byte for byte
LAMBDA_TASK_ROOT = "/var/task"


class PackageError(Exception):
    """The artifact could not be built; the message says which stage and why."""


@dataclass(frozen=True)
class Package:
    """One built artifact: the template, the code zip, and (for the local stack) the task root."""

    directory: Path
    stage: str
    digest: str
    pipeline: PipelineConfig

    @property
    def template(self) -> Path:
        return self.directory / "sam.json"

    @property
    def zip(self) -> Path:
        return self.directory / "deployment.zip"

    @property
    def task_root(self) -> Path:
        """``app.py`` and ``chalicelib/`` as the zip holds them (what ``/var/task`` has)."""
        return self.directory / "task"

    def load_template(self) -> dict[str, Any]:
        return dict(json.loads(self.template.read_text(encoding="utf-8")))


# --- 1. config -----------------------------------------------------------------------------


def render_config(text: str, environ: Mapping[str, str]) -> str:
    """Expand ``${VAR}`` in the source urls (the one place the config allows them) from
    ``environ``; an unset variable is an error naming the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"pipeline config is not valid TOML: {exc}") from exc
    apps = data.get("apps", {})
    for name, app in apps.items() if isinstance(apps, dict) else ():
        source = app.get("source") if isinstance(app, dict) else None
        raw = source.get("url") if isinstance(source, dict) else None
        if not isinstance(raw, str) or not ENV_REF_RE.search(raw):
            continue
        for var in ENV_REF_RE.findall(raw):
            if var not in environ:
                raise ConfigError(f"apps.{name}.source.url: environment variable {var} is not set")
        expanded = json.dumps(ENV_REF_RE.sub(lambda m: environ[m.group(1)], raw))
        text = text.replace(json.dumps(raw), expanded).replace(f"'{raw}'", expanded)
    return text


def load_config(
    path: Path, environ: Mapping[str, str], *, local: bool
) -> tuple[str, PipelineConfig]:
    """The rendered text and the validated config; for AWS (not ``local``) also deployable."""
    try:
        text = render_config(path.read_text(encoding="utf-8"), environ)
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline config {path}: {exc}") from exc
    pipeline = parse_pipeline(text, {})
    if not local:
        check_deployable(pipeline)
    return text, pipeline


# --- 2. code ---------------------------------------------------------------------------------


def _files(paths: Iterable[str], root: Path = ROOT) -> list[Path]:
    found: list[Path] = []
    for name in paths:
        path = root / name
        if path.is_dir():
            found.extend(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not {"__pycache__", "deployments", "venv"} & set(p.parts)
                and p.suffix != ".pyc"
            )
        elif path.exists():
            found.append(path)
    return sorted(found)


def _digest(parts: Iterable[bytes | str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()[:24]


def _tree_digest(paths: Iterable[str], *extra: str) -> str:
    parts: list[bytes | str] = [*extra]
    for path in _files(paths):
        if path.relative_to(ROOT).as_posix() == CONFIG_IN_PACKAGE:
            continue  # bundled separately, per config
        parts += [path.relative_to(ROOT).as_posix(), path.read_bytes()]
    return _digest(parts)


def _tool_env() -> dict[str, str]:
    """The environment for chalice and cfn-lint, which need a region (any: nothing is called)."""
    return {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}


def _chalice_bin() -> str:
    candidate = Path(sys.executable).with_name("chalice")
    return str(candidate) if candidate.exists() else "chalice"


def _stage_code(into: Path) -> None:
    """The files `chalice package` reads, without the demo config (bundled per package)."""
    shutil.copy2(ROOT / "app.py", into / "app.py")
    shutil.copy2(ROOT / "requirements.txt", into / "requirements.txt")
    shutil.copytree(
        ROOT / "chalicelib",
        into / "chalicelib",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "pipeline.toml"),
    )
    (into / ".chalice").mkdir()
    for path in (ROOT / ".chalice").glob("*.json"):
        shutil.copy2(path, into / ".chalice" / path.name)
    # chalice caches the vendored dependencies by a hash of requirements.txt: share its cache
    cache = ROOT / ".chalice" / "deployments"
    cache.mkdir(parents=True, exist_ok=True)
    (into / ".chalice" / "deployments").symlink_to(cache)


def _compile_zip(source: Path, target: Path) -> None:
    """Rewrite Chalice's zip: sorted entries, fixed dates, ``.pyc`` beside every module.

    Unchecked-hash pycs are used as they are (no source stat), and their code objects name
    ``/var/task/...`` so tracebacks in AWS show the real path.
    """
    with tempfile.TemporaryDirectory(prefix="roadie-zip-") as tmp:
        unpacked = Path(tmp)
        with zipfile.ZipFile(source) as zin:
            zin.extractall(unpacked)
        compileall.compile_dir(
            str(unpacked),
            quiet=1,
            workers=1,
            stripdir=str(unpacked),
            prependdir=LAMBDA_TASK_ROOT,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        _write_zip(unpacked, target)


def _write_zip(tree: Path, target: Path, extra: Mapping[str, bytes] | None = None) -> None:
    entries = {p.relative_to(tree).as_posix(): p for p in tree.rglob("*") if p.is_file()}
    extra = dict(extra or {})
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zout:
        for name in sorted(set(entries) | set(extra)):
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if name in extra else (entries[name].stat().st_mode & 0o777)
            info.external_attr = (0o100000 | (mode | 0o444)) << 16
            data = extra[name] if name in extra else entries[name].read_bytes()
            zout.writestr(info, data)
    tmp.replace(target)


def build_code(stage: str, cache: Path = DEFAULT_CACHE) -> Path:
    """`chalice package` of the code for ``stage`` (template + compiled zip), cached."""
    digest = _tree_digest(CODE_INPUTS, stage, CHALICE_VERSION, sys.version.split()[0])
    done = cache / f"code-{stage}-{digest}"
    if (done / "sam.json").exists():
        return done
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="roadie-code-", dir=cache) as tmp:
        staged, out = Path(tmp) / "project", Path(tmp) / "out"
        staged.mkdir()
        _stage_code(staged)
        env = _tool_env()
        result = subprocess.run(
            [_chalice_bin(), "package", "--stage", stage, str(out)],
            cwd=staged,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise PackageError(f"chalice package failed:\n{result.stdout}{result.stderr}")
        result_dir = Path(tmp) / "result"
        result_dir.mkdir()
        shutil.copy2(out / "sam.json", result_dir / "sam.json")
        _compile_zip(out / "deployment.zip", result_dir / "deployment.zip")
        try:
            result_dir.rename(done)
        except OSError:
            if not (done / "sam.json").exists():  # another process won the race: theirs is ours
                raise
    return done


# --- 3. template, and the whole package ------------------------------------------------------


def merge(merge_template: Mapping[str, Any], chalice_template: Mapping[str, Any]) -> dict[str, Any]:
    """What ``chalice package --merge-template`` does."""
    return dict(TemplateDeepMerger().merge(dict(merge_template), dict(chalice_template)))


def build(
    stage: str,
    config: Path,
    *,
    environ: Mapping[str, str] | None = None,
    local: bool = False,
    cache: Path = DEFAULT_CACHE,
) -> Package:
    """Build (or reuse) the package for ``stage`` bundling ``config``."""
    from infra.template import build_merge_template

    text, pipeline = load_config(config, os.environ if environ is None else environ, local=local)
    code = build_code(stage, cache)
    digest = _digest([code.name, text, _tree_digest(TEMPLATE_INPUTS), str(local)])
    done = cache / f"pkg-{stage}-{digest}"
    if (done / "sam.json").exists():
        return Package(done, stage, digest, pipeline)
    with tempfile.TemporaryDirectory(prefix="roadie-pkg-", dir=cache) as tmp:
        work = Path(tmp) / "result"
        work.mkdir()
        chalice_template = json.loads((code / "sam.json").read_text(encoding="utf-8"))
        merged = merge(build_merge_template(stage, pipeline), chalice_template)
        (work / "sam.json").write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
        _bundle(code / "deployment.zip", work, text)
        try:
            work.rename(done)
        except OSError:
            if not (done / "sam.json").exists():
                raise
    return Package(done, stage, digest, pipeline)


def _bundle(code_zip: Path, work: Path, config_text: str) -> None:
    """The code zip plus the rendered config; the app's own files also as a task root."""
    shutil.copy2(code_zip, work / "deployment.zip")
    info = zipfile.ZipInfo(CONFIG_IN_PACKAGE, ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o100644 << 16
    with zipfile.ZipFile(work / "deployment.zip", "a") as zout:
        zout.writestr(info, config_text)
    task = work / "task"
    with zipfile.ZipFile(work / "deployment.zip") as zin:
        own = [n for n in zin.namelist() if n == "app.py" or n.startswith("chalicelib/")]
        zin.extractall(task, own)


# --- 4. lint ---------------------------------------------------------------------------------


def state_machine_definition(template: Mapping[str, Any]) -> dict[str, Any]:
    """The ASL of the template's state machine with its substitutions filled in plausibly."""
    from infra.template import STATE_MACHINE

    props = template["Resources"][STATE_MACHINE]["Properties"]
    text = json.dumps(props["Definition"])
    for key in props.get("DefinitionSubstitutions", {}):
        arn = f"arn:aws:lambda:us-east-1:123456789012:function:{key}"
        text = text.replace("${" + key + "}", arn)
    leftover = re.findall(r"\$\{[A-Za-z0-9]+\}", text)
    if leftover:
        raise PackageError(f"state machine definition has unsubstituted {leftover[0]}")
    return dict(json.loads(text))


def asl_validator() -> Path:
    return ROOT / "tools" / "node_modules" / ".bin" / "asl-validator"


def lint(package: Package) -> list[str]:
    """cfn-lint and asl-validator; returns the problems (empty: clean)."""
    problems: list[str] = []
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--non-zero-exit-code", "error", str(package.template)],
        capture_output=True,
        text=True,
        check=False,
        env=_tool_env(),
    )
    if result.returncode != 0:
        problems.append(f"cfn-lint:\n{result.stdout}{result.stderr}")
    elif result.stdout.strip():
        print(result.stdout.strip())  # warnings are shown but do not fail the build
    validator = asl_validator()
    if not validator.exists():
        problems.append(f"asl-validator is not installed at {validator}: run scripts/bootstrap.sh")
        return problems
    with tempfile.NamedTemporaryFile("w", suffix=".asl.json", delete=False) as handle:
        json.dump(state_machine_definition(package.load_template()), handle)
    try:
        result = subprocess.run(
            [str(validator), "--json-path", handle.name],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(handle.name)
    if result.returncode != 0:
        problems.append(f"asl-validator:\n{result.stdout}{result.stderr}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--config", type=Path, default=EXAMPLE_CONFIG)
    parser.add_argument("--out", type=Path, default=ROOT / "out")
    parser.add_argument(
        "--local", action="store_true", help="allow local paths (the embedded stack's config)"
    )
    args = parser.parse_args(argv)
    try:
        package = build(args.stage, args.config, local=args.local)
    except (ConfigError, PackageError) as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    problems = lint(package)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("sam.json", "deployment.zip"):
        shutil.copy2(package.directory / name, args.out / name)
    size = (args.out / "deployment.zip").stat().st_size
    print(
        f"package: {args.out / 'sam.json'} and {args.out / 'deployment.zip'} "
        f"({size / 1e6:.1f} MB) for stage {args.stage}, config {args.config}: "
        "cfn-lint and asl-validator clean"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
