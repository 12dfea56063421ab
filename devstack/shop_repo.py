"""The sample app's local git repository (bare), built from devstack/sample_app with fixed SHAs.

History: ``v1`` on ``main`` (tag ``v1.0.0``: products table with a legacy column), ``staging``
= v1 plus one commit, ``v2`` on ``main`` (an expand migration and a post-deployment
contract migration), and ``v3`` on branch ``v3`` (tag ``v3.0.0``) on top of v2: the same
schema, a request handler that is ~150 ms slower and fails 1 request in 10 (the demo's bad
release; its handler comes from devstack/sample_app_v3). Authors, dates and file modes are
fixed, so every machine gets the same SHAs. Running it again on an existing repository changes
nothing, and keeps commits that were added on top of ``main`` or ``staging`` since (a demo
push).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SAMPLE_APP = Path(__file__).resolve().parent / "sample_app"
SAMPLE_APP_V3 = Path(__file__).resolve().parent / "sample_app_v3"  # what v3 changes
V1_TAG = "v1.0.0"
V3_TAG = "v3.0.0"
V3_BRANCH = "v3"
AUTHOR = ("Roadie Demo", "demo@roadie.invalid")
_V2_ONLY = (
    "db/migrate/002_add_price_to_products.sql",
    "db/post_migrate/003_drop_legacy_sku_from_products.sql",
)
_SKIPPED_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".DS_Store"}
_GENERATED_TOP = {"public", "tmp", "log", "REVISION", ".env"}  # made by running the app in place


class ShopRepoError(Exception):
    """The repository could not be created or read."""


@dataclass(frozen=True)
class ShopRepo:
    """Where the repository is and the SHAs of its four interesting commits."""

    path: Path
    v1: str
    v2: str
    staging: str
    v3: str

    @property
    def url(self) -> str:
        """What the deploy script's sourceUrl takes for this repository."""
        return str(self.path)


@dataclass(frozen=True)
class _Commit:
    files: Mapping[str, bytes]
    message: str
    timestamp: int


def create_shop_repo(path: Path) -> ShopRepo:
    """Create (or find) the shop's bare repository at ``path``; the SHAs are reproducible."""
    path = path.resolve()
    sources = _sample_files()
    v1_files = {name: body for name, body in sources.items() if name not in _V2_ONLY}
    v1_files["app/VERSION"] = b"1.0.0\n"
    staging_files = {
        **v1_files,
        "app/VERSION": b"1.1.0-rc1\n",
        "app/FEATURES": b"new-checkout\n",
    }
    if not (path / "HEAD").is_file():
        path.mkdir(parents=True, exist_ok=True)
        _git(path, "init", "--quiet", "--bare")
        _git(path, "symbolic-ref", "HEAD", "refs/heads/main")
    v1 = _commit(path, _Commit(v1_files, "shop 1.0.0: products", 1_704_103_200), None)
    staging = _commit(
        path, _Commit(staging_files, "staging: try the new checkout", 1_704_189_600), v1
    )
    v2 = _commit(
        path, _Commit(sources, "shop 2.0.0: prices; drop legacy SKUs later", 1_704_276_000), v1
    )
    v3_files = {**sources, "app/VERSION": b"3.0.0\n", **_files_in(SAMPLE_APP_V3)}
    v3 = _commit(
        path, _Commit(v3_files, "shop 3.0.0: price history on the catalogue", 1_704_362_400), v2
    )
    _point(path, "refs/heads/main", v2)
    _point(path, "refs/heads/staging", staging)
    _point(path, f"refs/heads/{V3_BRANCH}", v3)
    _point(path, f"refs/tags/{V1_TAG}", v1, keep_descendants=False)
    _point(path, f"refs/tags/{V3_TAG}", v3, keep_descendants=False)
    return ShopRepo(path=path, v1=v1, v2=v2, staging=staging, v3=v3)


def _sample_files() -> dict[str, bytes]:
    files = _files_in(SAMPLE_APP)
    if not files:
        raise ShopRepoError(f"no sample app sources in {SAMPLE_APP}")
    return files


def _files_in(root: Path) -> dict[str, bytes]:
    files = {}
    for item in sorted(root.rglob("*")):
        relative = item.relative_to(root)
        if (
            item.is_file()
            and not _SKIPPED_PARTS.intersection(relative.parts)
            and relative.parts[0] not in _GENERATED_TOP
            and item.suffix not in {".pyc", ".sqlite3"}
        ):
            files[relative.as_posix()] = item.read_bytes()
    return files


def _commit(repo: Path, commit: _Commit, parent: str | None) -> str:
    """Write the tree and commit objects (idempotent: same input, same SHA) and return the SHA."""
    with tempfile.TemporaryDirectory(prefix="shop-tree-") as scratch:
        tree_dir = Path(scratch) / "tree"
        for name, body in commit.files.items():
            target = tree_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            target.chmod(0o755 if name.startswith("bin/") else 0o644)
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git(repo, "--work-tree", str(tree_dir), "add", "--all", ".", extra_env=index)
        tree = _git(repo, "write-tree", extra_env=index)
    date = f"@{commit.timestamp} +0000"
    dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    parents = ["-p", parent] if parent else []
    return _git(repo, "commit-tree", tree, *parents, "-m", commit.message, extra_env=dates)


def _point(repo: Path, ref: str, sha: str, *, keep_descendants: bool = True) -> None:
    """Set ``ref`` to ``sha`` unless it is there already (or, for branches, ahead of it)."""
    current = _git(repo, "rev-parse", "--verify", "--quiet", ref, check=False)
    if current == sha:
        return
    if current and keep_descendants:
        ahead = subprocess.run(
            _command(repo, "merge-base", "--is-ancestor", sha, current),
            env=_env({}),
            capture_output=True,
            check=False,
        )
        if ahead.returncode == 0:
            return
    _git(repo, "update-ref", ref, sha)


def _command(repo: Path, *args: str) -> list[str]:
    name, email = AUTHOR
    return [
        "git",
        "-c",
        f"user.name={name}",
        "-c",
        f"user.email={email}",
        "-c",
        "commit.gpgsign=false",
        "-c",
        "core.autocrlf=false",
        "-c",
        "core.fileMode=true",
        "--git-dir",
        str(repo),
        *args,
    ]


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    name, email = AUTHOR
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME=name,
        GIT_AUTHOR_EMAIL=email,
        GIT_COMMITTER_NAME=name,
        GIT_COMMITTER_EMAIL=email,
        LC_ALL="C",
    )
    env.update(extra)
    return env


def _git(
    repo: Path, *args: str, extra_env: Mapping[str, str] | None = None, check: bool = True
) -> str:
    if shutil.which("git") is None:
        raise ShopRepoError("git is not installed")
    result = subprocess.run(
        _command(repo, *args),
        env=_env(extra_env or {}),
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise ShopRepoError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()
