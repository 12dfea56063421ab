"""Fixtures for the host-side tests: the shop repository and sandboxed hosts with one database."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:  # so that a bare `pytest` finds infra and devstack
    sys.path.insert(0, str(REPO_ROOT))

from devstack.shop_repo import ShopRepo, create_shop_repo  # noqa: E402
from infra.ssm_document import build_document  # noqa: E402

from .sandbox import Host  # noqa: E402


@pytest.fixture(scope="session")
def shop_repo(tmp_path_factory: pytest.TempPathFactory) -> ShopRepo:
    return create_shop_repo(tmp_path_factory.mktemp("repo") / "shop.git")


@pytest.fixture(scope="session")
def document() -> dict[str, Any]:
    return build_document()


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "db" / "shop.sqlite3"


@pytest.fixture
def make_host(
    tmp_path: Path, shop_repo: ShopRepo, document: dict[str, Any], database: Path
) -> Callable[..., Host]:
    """make_host(name) -> a Host whose shared/.env points at the test's one database."""

    def make(name: str, source_url: str | None = None, path_prefix: str = "") -> Host:
        root = tmp_path / "hosts" / name
        shared = root / "shop" / "shared"
        shared.mkdir(parents=True)
        (shared / ".env").write_text(
            f'# written by provisioning\nDATABASE_PATH="{database}"\nexport RAILS_ENV=production\n'
        )
        return Host(root, document, source_url or shop_repo.url, path_prefix)

    return make
