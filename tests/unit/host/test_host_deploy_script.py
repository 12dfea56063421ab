"""roadie-deploy.sh, run for real: the rendered document in sandboxed hosts deploying the shop."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devstack.shop_repo import ShopRepo
from infra.ssm_document import PARAMETERS, SCRIPT_PATH

from .sandbox import Host

MakeHost = Callable[..., Host]


def deploy(host: Host, sha: str, previous: str = "", *, migrate: bool = True) -> None:
    host.ok("stage", sha)
    if migrate:
        host.ok("migrate", sha)
    host.ok("switch", sha, previousSha=previous)
    assert f"REVISION={sha}\n" in host.ok("verify", sha)


def rows(database: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchall()


def test_two_hosts_deploy_v1_then_v2_and_each_migration_runs_exactly_once(
    make_host: MakeHost, shop_repo: ShopRepo, database: Path
) -> None:
    a, b = make_host("i-aaa"), make_host("i-bbb")
    v1, v2 = shop_repo.v1, shop_repo.v2

    for host in (a, b):
        assert f"roadie: staged {v1} in " in host.ok("stage", v1)
    assert "migrate: applied 001_create_products.sql" in a.ok("migrate", v1)
    for host in (a, b):
        assert f"roadie: switched none -> {v1}" in host.ok("switch", v1)
        assert f"REVISION={v1}\n" in host.ok("verify", v1)

    for host in (a, b):
        host.ok("stage", v2)
    a.ok("migrate", v2, previousSha=v1)
    assert rows(database, "SELECT version FROM schema_migrations ORDER BY version") == [
        ("001",),
        ("002",),
    ], "post-deployment migrations must wait"
    assert "migrate: 0 applied" in b.ok("migrate", v2, previousSha=v1)
    for host in (a, b):
        assert f"roadie: switched {v1} -> {v2}" in host.ok("switch", v2, previousSha=v1)
        assert f"REVISION={v2}\n" in host.ok("verify", v2, previousSha=v1)
    assert "applied 003_drop_legacy_sku" in a.ok("post_migrate", v2, previousSha=v1)
    b.ok("post_migrate", v2, previousSha=v1)

    for host in (a, b):
        assert host.current() == f"releases/{v2}"
        release = host.app_dir / "releases" / v2
        assert (release / "REVISION").read_text() == f"{v2}\n"
        assert json.loads((release / "public/assets/manifest.json").read_text())["sha"] == v2
        assert (release / "tmp/restart.txt").exists()
        assert os.readlink(release / ".env") == "../../shared/.env"
        assert os.readlink(release / "log") == "../../shared/log"
        assert (host.app_dir / "releases" / v1).is_dir(), "the previous release stays"
    assert rows(database, "SELECT version FROM schema_migrations ORDER BY version") == [
        ("001",),
        ("002",),
        ("003",),
    ]
    assert rows(database, "SELECT version, host, release FROM roadie_migration_log") == [
        ("001", "i-aaa", v1),
        ("002", "i-aaa", v2),
        ("003", "i-aaa", v2),
    ]
    columns = [row[1] for row in rows(database, "PRAGMA table_info(products)")]
    assert columns == ["id", "name", "price_cents"]


def test_rollback_returns_to_the_previous_release_and_is_idempotent(
    make_host: MakeHost, shop_repo: ShopRepo
) -> None:
    host = make_host("i-roll")
    v1, v2 = shop_repo.v1, shop_repo.v2
    deploy(host, v1)
    deploy(host, v2, v1)
    restart = host.app_dir / "releases" / v1 / "tmp" / "restart.txt"
    restart.unlink()

    first = host.ok("rollback", v2, previousSha=v1)
    second = host.ok("rollback", v2, previousSha=v1)

    assert f"roadie: rolled back {v2} -> {v1}" in first
    assert "already on" in second
    assert f"roadie: rolled back {v1} -> {v1}" in second
    assert host.current() == f"releases/{v1}"
    assert restart.exists()
    assert f"REVISION={v1}\n" in host.ok("verify", v1)
    assert f"{v2} -> {v1} (rollback of {v2})" in (host.app_dir / "revisions.log").read_text()


def test_rollback_of_a_first_deploy_removes_current(
    make_host: MakeHost, shop_repo: ShopRepo
) -> None:
    host = make_host("i-first")
    deploy(host, shop_repo.v1)

    out = host.ok("rollback", shop_repo.v1)

    assert "(first deploy: removed current)" in out
    assert host.current() is None
    assert "nothing" in host.ok("rollback", shop_repo.v1)


def test_rollback_is_safe_on_a_host_that_was_never_switched(
    make_host: MakeHost, shop_repo: ShopRepo
) -> None:
    host = make_host("i-never")
    host.ok("stage", shop_repo.v2)

    assert "rolled back nothing: current is none" in host.ok(
        "rollback", shop_repo.v2, previousSha=shop_repo.v1
    )
    assert "rolled back nothing" in host.ok("rollback", shop_repo.v2)
    assert host.current() is None


def test_rollback_fails_when_the_previous_release_is_missing_and_the_new_one_is_live(
    make_host: MakeHost, shop_repo: ShopRepo
) -> None:
    host = make_host("i-lost")
    deploy(host, shop_repo.v2)

    result = host.run("rollback", shop_repo.v2, previousSha=shop_repo.v1)

    assert result.returncode == 11
    assert f"release {shop_repo.v1} is not on this host" in result.stderr


def test_verify_fails_with_a_reason_when_current_is_not_the_expected_sha(
    make_host: MakeHost, shop_repo: ShopRepo
) -> None:
    host = make_host("i-verify")
    never = host.run("verify", shop_repo.v1)
    deploy(host, shop_repo.v1)

    wrong = host.run("verify", shop_repo.v2)

    assert never.returncode == 9
    assert "no current release" in never.stderr
    assert wrong.returncode == 9
    assert f"REVISION={shop_repo.v1}\n" in wrong.stdout
    assert f"current release is {shop_repo.v1}, expected {shop_repo.v2}" in wrong.stderr


def test_verify_fails_when_the_health_check_fails(make_host: MakeHost, shop_repo: ShopRepo) -> None:
    host = make_host("i-sick")
    host.ok("stage", shop_repo.v1)
    host.ok("switch", shop_repo.v1)  # never migrated: the health check must notice

    result = host.run("verify", shop_repo.v1)

    assert result.returncode == 10
    assert "health check failed" in result.stderr


def test_stage_is_idempotent(make_host: MakeHost, shop_repo: ShopRepo) -> None:
    host = make_host("i-stage")
    host.ok("stage", shop_repo.v1)
    revision = host.app_dir / "releases" / shop_repo.v1 / "REVISION"
    before = revision.stat()

    again = host.ok("stage", shop_repo.v1)

    assert "(already staged)" in again
    assert revision.stat().st_ino == before.st_ino
    assert revision.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in (host.app_dir / "releases").iterdir()) == [shop_repo.v1]


def test_a_failing_build_leaves_no_release_behind(make_host: MakeHost, shop_repo: ShopRepo) -> None:
    host = make_host("i-build")

    result = host.run("stage", shop_repo.v1, buildCommand="false")

    assert result.returncode == 4
    assert "build failed (exit 1): false" in result.stderr
    assert list((host.app_dir / "releases").iterdir()) == []


def test_stage_of_an_unknown_sha_fails_clearly(make_host: MakeHost) -> None:
    host = make_host("i-unknown")

    result = host.run("stage", "0" * 40)

    assert result.returncode == 3
    assert f"commit {'0' * 40} not found in " in result.stderr
    assert list((host.app_dir / "releases").iterdir()) == []


def test_stage_from_s3_fetches_the_tarball_with_the_aws_cli(
    make_host: MakeHost, shop_repo: ShopRepo, tmp_path: Path
) -> None:
    bucket = tmp_path / "bucket"
    (bucket / "shop").mkdir(parents=True)
    subprocess.run(
        [
            *("git", "--git-dir", str(shop_repo.path), "archive", "--format=tar.gz"),
            *("-o", str(bucket / "shop" / f"{shop_repo.v2}.tar.gz"), shop_repo.v2),
        ],
        check=True,
    )
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    aws = fake_bin / "aws"
    aws.write_text(
        "#!/bin/bash\n"
        f'echo "$*" >> {tmp_path}/aws-calls\n'
        "[[ $1 == s3 && $2 == cp && $4 == - && $3 == s3://artifacts/* ]] || exit 2\n"
        f'exec cat "{bucket}/${{3#s3://artifacts/}}"\n'
    )
    aws.chmod(0o755)
    host = make_host("i-s3", source_url="s3://artifacts", path_prefix=str(fake_bin))

    out = host.ok("stage", shop_repo.v2, sourceKind="s3")
    missing = host.run("stage", shop_repo.v1, sourceKind="s3")

    release = host.app_dir / "releases" / shop_repo.v2
    assert f"roadie: staged {shop_repo.v2}" in out
    assert (release / "REVISION").read_text() == f"{shop_repo.v2}\n"
    assert (release / "db/post_migrate/003_drop_legacy_sku_from_products.sql").exists()
    assert (release / "public/assets/manifest.json").exists()
    calls = (tmp_path / "aws-calls").read_text().splitlines()
    assert calls[0] == f"s3 cp s3://artifacts/shop/{shop_repo.v2}.tar.gz -"
    assert missing.returncode == 3
    assert "could not fetch and unpack" in missing.stderr


def test_switch_and_migrate_need_a_staged_release(make_host: MakeHost, shop_repo: ShopRepo) -> None:
    host = make_host("i-unstaged")

    for phase in ("migrate", "switch", "post_migrate"):
        result = host.run(phase, shop_repo.v1)
        assert result.returncode == 5, phase
        assert "is not staged on this host" in result.stderr


def test_post_migrate_needs_the_release_to_be_current(
    make_host: MakeHost, shop_repo: ShopRepo
) -> None:
    host = make_host("i-post")
    deploy(host, shop_repo.v1)
    host.ok("stage", shop_repo.v2)

    not_current = host.run("post_migrate", shop_repo.v2)
    host.ok("switch", shop_repo.v2)  # pre-deployment migration 002 never ran
    refused = host.run("post_migrate", shop_repo.v2)

    assert not_current.returncode == 7
    assert f"(current is {shop_repo.v1})" in not_current.stderr
    assert refused.returncode == 7
    assert "pre-deployment migrations pending: 002" in refused.stderr


def test_commands_get_argv_and_environment_but_never_a_shell(
    make_host: MakeHost, shop_repo: ShopRepo, database: Path
) -> None:
    host = make_host("i-env")
    with (host.app_dir / "shared" / ".env").open("a") as env_file:
        env_file.write(
            "GREETING=$(touch pwned) `id` ; x\nSHA=not-the-script-variable\nnot a line\n"
        )

    staged = host.ok("stage", shop_repo.v1, buildCommand="env")
    migrating = host.ok("migrate", shop_repo.v1, migrateCommand="env")
    switching = host.ok("switch", shop_repo.v1, restartCommand="env")

    release = str(host.app_dir.resolve() / "releases" / shop_repo.v1)
    assert "GREETING=$(touch pwned) `id` ; x\n" in staged
    assert f"DATABASE_PATH={database}\n" in staged
    assert "RAILS_ENV=production\n" in staged
    assert "ROADIE_PHASE=stage\n" in staged
    assert f"ROADIE_SHA={shop_repo.v1}\n" in staged
    assert "SKIP_POST_DEPLOYMENT_MIGRATIONS" not in staged
    assert "SKIP_POST_DEPLOYMENT_MIGRATIONS=1\n" in migrating
    assert f"ROADIE_RELEASE_DIR={release}\n" in migrating
    assert f"RELEASE_DIR={release}\n" in switching
    assert "SKIP_POST_DEPLOYMENT_MIGRATIONS" not in switching
    assert not list(host.root.rglob("pwned"))
    assert host.current() == f"releases/{shop_repo.v1}", "a .env SHA= must not leak"


def test_switch_prunes_old_releases_but_never_current_or_previous(
    make_host: MakeHost, shop_repo: ShopRepo
) -> None:
    host = make_host("i-prune")
    releases = host.app_dir / "releases"
    for age, sha in enumerate([shop_repo.staging, shop_repo.v1, shop_repo.v2]):  # oldest first
        host.ok("stage", sha, buildCommand="")
        os.utime(releases / sha / "REVISION", (1_000_000 + age, 1_000_000 + age))
    host.ok("switch", shop_repo.v1, restartCommand="")
    os.utime(releases / shop_repo.v1 / "REVISION", (900_000, 900_000))  # current, yet oldest

    out = host.ok("switch", shop_repo.v2, previousSha=shop_repo.v1, keepReleases="1")

    assert f"pruned release {shop_repo.staging}" in out
    assert sorted(p.name for p in releases.iterdir()) == sorted([shop_repo.v1, shop_repo.v2])


def test_one_phase_at_a_time_per_host(make_host: MakeHost, shop_repo: ShopRepo) -> None:
    host = make_host("i-locked")
    with (host.app_dir / ".roadie.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = host.run("verify", shop_repo.v1, executionTimeout="1")

    assert result.returncode == 12
    assert "another roadie phase holds" in result.stderr


def test_the_script_runs_directly_and_checks_its_variables(
    make_host: MakeHost, shop_repo: ShopRepo
) -> None:
    host = make_host("i-direct")
    env = {
        "PATH": os.environ["PATH"],
        "ROADIE_HOST_ROOT": str(host.root),
        "PHASE": "stage",
        "APP": "shop",
        "SHA": shop_repo.v1,
        "SOURCE_URL": shop_repo.url,
    }

    def run(**overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT_PATH)],
            env={**env, **overrides},
            capture_output=True,
            text=True,
            check=False,
        )

    assert run().returncode == 0
    assert (host.app_dir / "releases" / shop_repo.v1 / "REVISION").exists()
    for parameter in PARAMETERS:
        result = run(**{parameter.variable: "x'; touch /tmp/roadie-pwned #"})
        assert result.returncode == 2, parameter.variable
        assert f"invalid or missing {parameter.variable}" in result.stderr
    missing = run(PHASE="")
    assert missing.returncode == 2


def test_switch_fails_cleanly_when_current_is_not_a_symlink(
    make_host: MakeHost, shop_repo: ShopRepo
) -> None:
    host = make_host("i-odd")
    host.ok("stage", shop_repo.v1)
    (host.app_dir / "current").mkdir()  # a directory where the symlink belongs

    result = host.run("switch", shop_repo.v1)

    assert result.returncode == 8
    assert "could not replace" in result.stderr
    assert not list(host.app_dir.glob("current.tmp-*"))


def test_unexpected_failures_exit_1_naming_the_line(
    make_host: MakeHost, shop_repo: ShopRepo
) -> None:
    host = make_host("i-broken")
    (host.app_dir / "releases").write_text("not a directory")

    result = host.run("stage", shop_repo.v1)

    assert result.returncode == 1
    assert "roadie: error: unexpected failure (exit 1) at line" in result.stderr


def test_concurrent_migrations_on_two_hosts_still_run_each_version_once(
    make_host: MakeHost, shop_repo: ShopRepo, database: Path
) -> None:
    hosts = [make_host("i-one"), make_host("i-two")]
    for host in hosts:
        host.ok("stage", shop_repo.v2)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda h: h.run("migrate", shop_repo.v2), hosts))

    assert [r.returncode for r in results] == [0, 0]
    versions = rows(database, "SELECT version FROM roadie_migration_log ORDER BY version")
    assert versions == [("001",), ("002",)]


def test_a_missing_build_program_fails_the_stage(make_host: MakeHost, shop_repo: ShopRepo) -> None:
    host = make_host("i-nobuild")

    result = host.run("stage", shop_repo.v1, buildCommand="bin/nonexistent --flag")

    assert result.returncode == 4
    assert "build failed (exit 127): bin/nonexistent --flag" in result.stderr
    assert list((host.app_dir / "releases").iterdir()) == []


def reported(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("CURRENT_REVISION=")]


def test_every_phase_ends_by_reporting_the_release_the_host_runs_success_or_failure(
    make_host: MakeHost, shop_repo: ShopRepo
) -> None:
    host = make_host("i-report")
    v1, v2 = shop_repo.v1, shop_repo.v2
    assert reported(host.ok("stage", v1)) == ["CURRENT_REVISION="]  # nothing live yet
    deploy(host, v1)
    assert reported(host.ok("stage", v2)) == [f"CURRENT_REVISION={v1}"]
    assert reported(host.ok("switch", v2, previousSha=v1)) == [f"CURRENT_REVISION={v2}"]
    assert reported(host.ok("rollback", v2, previousSha=v1)) == [f"CURRENT_REVISION={v1}"]
    # a failed phase tells the truth too: the failed verify, a rollback that cannot happen
    wrong = host.run("verify", v2)
    assert wrong.returncode == 9 and reported(wrong.stdout) == [f"CURRENT_REVISION={v1}"]
    host.ok("switch", v2, previousSha=v1)
    impossible = host.run("rollback", v2, previousSha="f" * 40)
    assert impossible.returncode == 11
    assert reported(impossible.stdout) == [f"CURRENT_REVISION={v2}"]


def test_a_failed_migration_is_named_in_its_error(
    make_host: MakeHost, shop_repo: ShopRepo, database: Path
) -> None:
    host = make_host("i-contract")
    v1, v2 = shop_repo.v1, shop_repo.v2
    deploy(host, v1)
    host.ok("stage", v2)
    host.ok("migrate", v2, previousSha=v1)
    host.ok("switch", v2, previousSha=v1)
    with sqlite3.connect(database) as connection:  # the column 003 drops is already gone
        connection.execute("ALTER TABLE products DROP COLUMN legacy_sku")

    result = host.run("post_migrate", v2, previousSha=v1)

    assert result.returncode == 7
    assert "migrate: failed: 003_drop_legacy_sku_from_products.sql: " in result.stderr
    assert reported(result.stdout) == [f"CURRENT_REVISION={v2}"]
