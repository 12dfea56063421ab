"""The environment view in the terminal: fleet state and each host's release."""

from __future__ import annotations

from cli.render import describe_environment


def test_a_mixed_fleet_shows_each_hosts_release_and_who_diverged_it() -> None:
    lines = describe_environment(
        {
            "app": "shop",
            "environment": "production",
            "current_sha": "a" * 40,
            "fleet_state": "mixed",
            "diverged_deploy_id": "d-1",
            "hosts": [
                {"instance_id": "i-1", "name": "shop-production-1", "sha": "b" * 40},
                {"instance_id": "i-2", "name": "", "sha": ""},
            ],
        }
    )
    assert "  fleet     mixed (diverged by d-1; new deploys wait)" in lines
    assert f"    {'shop-production-1':<22} {'b' * 12}" in lines
    assert f"    {'i-2':<22} -" in lines


def test_an_older_server_without_a_fleet_shows_no_fleet_lines() -> None:
    lines = describe_environment({"app": "shop", "environment": "production"})
    assert not any("fleet" in line for line in lines)
