"""The sample app's git repository: fixed SHAs, the branches and tag the stack relies on."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devstack.shop_repo import V1_TAG, V3_TAG, ShopRepo, create_shop_repo


def git(repo: ShopRepo, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo.path), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_shas_are_the_same_on_every_machine(tmp_path: Path, shop_repo: ShopRepo) -> None:
    other = create_shop_repo(tmp_path / "elsewhere" / "shop.git")

    assert other == ShopRepo(
        other.path, shop_repo.v1, shop_repo.v2, shop_repo.staging, shop_repo.v3
    )
    assert len({shop_repo.v1, shop_repo.v2, shop_repo.staging, shop_repo.v3}) == 4


def test_main_ends_at_v2_staging_differs_and_the_tag_marks_v1(shop_repo: ShopRepo) -> None:
    assert git(shop_repo, "rev-parse", "refs/heads/main") == shop_repo.v2
    assert git(shop_repo, "rev-parse", "HEAD") == shop_repo.v2
    assert git(shop_repo, "rev-parse", f"{shop_repo.v2}^") == shop_repo.v1
    assert git(shop_repo, "rev-parse", "refs/heads/staging") == shop_repo.staging
    assert git(shop_repo, "rev-parse", f"{shop_repo.staging}^") == shop_repo.v1
    assert git(shop_repo, "rev-parse", f"{V1_TAG}^{{commit}}") == shop_repo.v1
    assert shop_repo.url == str(shop_repo.path)


def test_v2_adds_an_expand_and_a_contract_migration(shop_repo: ShopRepo) -> None:
    v1_files = git(shop_repo, "ls-tree", "-r", "--name-only", shop_repo.v1).splitlines()
    v2_tree = git(shop_repo, "ls-tree", "-r", shop_repo.v2).splitlines()
    v2_files = {line.split("\t")[1]: line.split()[0] for line in v2_tree}

    assert set(v2_files) - set(v1_files) == {
        "db/migrate/002_add_price_to_products.sql",
        "db/post_migrate/003_drop_legacy_sku_from_products.sql",
    }
    assert "db/migrate/001_create_products.sql" in v1_files
    assert {name for name, mode in v2_files.items() if mode == "100755"} == {
        "bin/build",
        "bin/health",
        "bin/migrate",
        "bin/post_migrate",
        "bin/restart",
    }
    assert git(shop_repo, "show", f"{shop_repo.v1}:app/VERSION") == "1.0.0"
    assert git(shop_repo, "show", f"{shop_repo.v2}:app/VERSION") == "2.0.0"


def test_creating_again_changes_nothing_and_keeps_commits_pushed_on_top(tmp_path: Path) -> None:
    first = create_shop_repo(tmp_path / "shop.git")
    tree = git(first, "rev-parse", "main^{tree}")
    env = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a"}
    pushed = subprocess.run(
        ["git", "--git-dir", str(first.path), "commit-tree", tree, "-p", first.v2, "-m", "push"],
        capture_output=True,
        text=True,
        check=True,
        env={**env, "GIT_COMMITTER_EMAIL": "a@b", "PATH": "/usr/bin:/bin"},
    ).stdout.strip()
    git(first, "update-ref", "refs/heads/main", pushed)

    again = create_shop_repo(tmp_path / "shop.git")

    assert again == first
    assert git(first, "rev-parse", "refs/heads/main") == pushed


def test_v3_is_v2_with_a_slower_failing_handler_on_its_own_branch(shop_repo: ShopRepo) -> None:
    assert git(shop_repo, "rev-parse", f"{shop_repo.v3}^") == shop_repo.v2
    assert git(shop_repo, "rev-parse", "refs/heads/v3") == shop_repo.v3
    assert git(shop_repo, "rev-parse", f"{V3_TAG}^{{commit}}") == shop_repo.v3
    assert git(shop_repo, "rev-parse", "refs/heads/main") == shop_repo.v2, "main stays v2"
    changed = git(shop_repo, "diff", "--name-only", shop_repo.v2, shop_repo.v3).splitlines()
    assert changed == ["app/VERSION", "app/handler.py"], "no new migration"
    assert "PRICE_HISTORY_SECONDS = 0.15" in git(
        shop_repo, "show", f"{shop_repo.v3}:app/handler.py"
    )
    assert git(shop_repo, "show", f"{shop_repo.v3}:app/VERSION") == "3.0.0"
