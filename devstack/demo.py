"""`make demo`: real deploys of the sample app to a 5-host production fleet, proven.

Starts the embedded stack and its traffic generator (every host serves requests with its own
release's code, recorded in CloudWatch), deploys v1 by SHA then v2 by ref (`main`) through the
HTTP API, then the worse v3 (slower, 1 request in 10 fails: its host health check passes, so
the deploy succeeds) and rolls it back with `POST /deploys/{id}/rollback` once the graphs show
the regression. It shows each host's progress while a rollout runs, prints the v2 deploy
record, and checks the result: every host's `current` points at the v2 release, the SQLite
database shows each migration applied exactly once, CloudWatch shows v3 worse than v2, and
the dashboard PNG (`$ROADIE_STATE_DIR/demo/dashboard.png`) is written with a marker per
deploy. Exits non-zero if any check fails.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from chalicelib.domain.lifecycle import COMPLETED_STATUSES
from devstack.stack import LocalStack, StackOptions

APP, ENV = "shop", "production"
TRAFFIC_RATE = 4.0  # requests/s per host while the demo runs
SERVE_SECONDS = 2.0  # how long v3 serves (and v2 again after the rollback) before moving on
TERMINAL = {status.value for status in COMPLETED_STATUSES}  # every status a deploy ends in


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.session.post(self.url + path, json=body, timeout=30)

    def get(self, path: str) -> dict[str, Any]:
        response = self.session.get(self.url + path, timeout=30)
        response.raise_for_status()
        return dict(response.json())


def watch(api: Api, deploy_id: str, timeout: float = 120) -> dict[str, Any]:
    """Print each host's step results as they land; return the finished record."""
    start = time.monotonic()
    seen: set[tuple[str, int, str]] = set()
    phase = None
    while True:
        record = api.get(f"/deploys/{deploy_id}")
        elapsed = time.monotonic() - start
        if record["phase"] != phase:
            phase = record["phase"]
            print(f"  [{elapsed:5.1f}s] phase: {phase}")
        for host in record["hosts"]:
            for step in host["steps"]:
                key = (host["instance_id"], step["step"], step["status"])
                if key in seen or step["status"] == "pending":
                    continue
                seen.add(key)
                label = f"{step['command']}" + (
                    f" (batch {host['batch']})" if step["command"] in ("switch", "verify") else ""
                )
                print(
                    f"  [{elapsed:5.1f}s]   {host['name'] or host['instance_id']:<20} "
                    f"{label:<20} {step['status']:<10} exit={step['exit_code']}"
                )
        if record["status"] in TERMINAL:
            print(f"  [{elapsed:5.1f}s] deploy {deploy_id}: {record['status']}")
            return record
        if elapsed > timeout:
            raise SystemExit(f"deploy {deploy_id} did not finish within {timeout}s")
        time.sleep(0.25)


def deploy(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/deploys", body)
    print(f"POST /deploys {json.dumps(body)} -> {response.status_code}")
    if response.status_code != 202:
        raise SystemExit(f"deploy was not accepted: {response.text}")
    return watch(api, response.json()["deploy_id"])


def prove(stack: LocalStack, expected_sha: str) -> list[str]:
    """Check every host's release and the migration log; return the problems found."""
    problems = []
    hosts = stack.provisioned.hosts[f"{APP}#{ENV}"]
    print("\nHosts:")
    for host in hosts:
        app_dir = stack.options.hosts_dir / host["instance_id"] / APP
        current = app_dir / "current"
        target = os.readlink(current) if current.is_symlink() else "(missing)"
        revision = (current / "REVISION").read_text().strip() if current.exists() else ""
        ok = Path(target).name == expected_sha and revision == expected_sha
        print(
            f"  {host['name']:<20} current -> {target}  REVISION={revision[:12]}  "
            f"{'ok' if ok else 'WRONG'}"
        )
        if not ok:
            problems.append(f"{host['name']} is not on {expected_sha}")
    db = stack.options.state_dir / "db" / f"{APP}-{ENV}.sqlite3"
    print(f"\nDatabase {db}:")
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT version, COUNT(*), GROUP_CONCAT(host) FROM roadie_migration_log "
            "GROUP BY version ORDER BY version"
        ).fetchall()
        applied = [
            r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        ]
    for version, count, where in rows:
        print(f"  migration {version}: applied {count}x (on {where})")
        if count != 1:
            problems.append(f"migration {version} ran {count} times")
    print(f"  schema_migrations: {applied}")
    if not rows:
        problems.append("no migration ran")
    return problems


def _quiet(self: object, *args: object) -> None:
    """The demo prints its own progress; the local server's access log would drown it."""


def graphed(expected_succeeded: int) -> list[str]:
    """The deploys reached CloudWatch (the metrics the dashboard graphs)."""
    from datetime import datetime, timedelta

    import boto3

    from chalicelib.adapters import metrics

    cloudwatch = boto3.client("cloudwatch")
    now = datetime.now(UTC)
    dims = [
        {"Name": "service", "Value": "roadie"},
        {"Name": "app", "Value": APP},
        {"Name": "environment", "Value": ENV},
    ]
    totals = {}
    for metric in (metrics.FINISHED, metrics.SUCCEEDED, metrics.FAILED):
        points = cloudwatch.get_metric_statistics(
            Namespace=metrics.NAMESPACE,
            MetricName=metric,
            Dimensions=dims,
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(minutes=5),
            Period=3600,
            Statistics=["Sum"],
        )["Datapoints"]
        totals[metric] = int(sum(p["Sum"] for p in points))
    dashboards = [d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]]
    print(f"\nCloudWatch Roadie metrics for {APP}/{ENV}: {totals}; dashboards: {dashboards}")
    if totals[metrics.SUCCEEDED] != expected_succeeded:
        return [f"CloudWatch shows {totals[metrics.SUCCEEDED]} successful deploys"]
    return []


def health(repo: Any, deploys: list[dict[str, Any]], since: datetime, path: Path) -> list[str]:
    """What users felt per release (from CloudWatch), and the dashboard PNG with a marker per
    deploy; the problems found (v3 must show worse than v2, every deploy a marker)."""
    import boto3

    from devstack.dashboard_png import DeployMarker, fetch_health, render_dashboard

    cloudwatch = boto3.client("cloudwatch")
    series = fetch_health(
        cloudwatch, APP, ENV, since - timedelta(seconds=5), datetime.now(UTC) + timedelta(seconds=5)
    )
    by_release = {item.release: item for item in series}
    print(f"\nThe app's health per release (CloudWatch Shop/Health, {APP}/{ENV}):")
    for item in series:
        print(
            f"  {item.release[:12]}: {item.total_requests} requests, "
            f"{item.overall_error_rate:.1f}% 5xx, {item.mean_latency_ms:.0f} ms average"
        )
    names = {repo.v1: "v1", repo.v2: "v2", repo.v3: "v3"}
    markers = [
        DeployMarker(
            datetime.fromisoformat(d["started_at"]),
            d["sha"],
            d["requested_by"],
            d["status"] + (" (rollback)" if d.get("rollback_of") else ""),
        )
        for d in sorted(deploys, key=lambda d: d["created_at"])
        if d.get("started_at")
    ]
    title = f"{APP}/{ENV}: the app's health per release, a line at each deploy"
    render_dashboard(series, markers, path, title, names)
    print(f"Dashboard picture: {path} ({len(markers)} deploy markers)")
    problems: list[str] = []
    good, bad = by_release.get(repo.v2), by_release.get(repo.v3)
    if good is None or bad is None:
        return [*problems, "CloudWatch has no traffic for v2 or v3"]
    if not bad.overall_error_rate > good.overall_error_rate:
        problems.append("v3's error rate is not worse than v2's")
    if not bad.mean_latency_ms > good.mean_latency_ms + 100:
        problems.append("v3 is not visibly slower than v2")
    if len(markers) != len(deploys):
        problems.append(f"{len(markers)} markers for {len(deploys)} deploys")
    # the record and the metrics tell one story: v3 served only between its deploy's start
    # and the end of its rollback (one 2-second period of slack for the buckets)
    shipped = [d for d in deploys if d["sha"] == repo.v3 and d.get("started_at")]
    undone = [d for d in deploys if d.get("rollback_of") and d.get("finished_at")]
    slack = timedelta(seconds=2)
    if not shipped or not undone:
        problems.append("no record of v3's deploy and its rollback")
    elif not (
        datetime.fromisoformat(shipped[0]["started_at"]) - slack
        <= bad.timestamps[0]
        <= bad.timestamps[-1]
        <= datetime.fromisoformat(undone[0]["finished_at"]) + slack
    ):
        problems.append("v3's traffic is not between its deploy and its rollback")
    return problems


def demo_options() -> StackOptions:
    """The demo runs on a fresh state of its own, ``$ROADIE_STATE_DIR/demo`` (hosts inside it
    unless ``ROADIE_HOSTS_DIR`` is set): it proves its deploys from nothing, each migration
    applied once, run after run, and it never touches what ``make serve`` keeps."""
    options = StackOptions.from_env()
    options.state_dir = options.state_dir / "demo"
    if not os.environ.get("ROADIE_HOSTS_DIR"):
        options.hosts_dir = options.state_dir / "hosts"
    return options


def main() -> int:
    options = demo_options()
    print("Roadie local stack; settings:")
    for line in options.describe():
        print(f"  {line}")
    started = time.monotonic()
    stack = LocalStack(options).start()
    try:
        from chalice.local import ChaliceRequestHandler

        url = stack.start_api(port=0)
        ChaliceRequestHandler.log_message = _quiet  # type: ignore[method-assign]
        print(f"API on {url}; moto on {stack.endpoint}")
        print(stack.describe_provisioning() + "\n")
        api = Api(url, options.api_token)
        repo = stack.sources
        print(
            f"Sample app repo {repo.path}: v1={repo.v1[:12]} main(v2)={repo.v2[:12]} "
            f"v3={repo.v3[:12]}"
        )
        traffic_since = datetime.now(UTC)
        stack.start_traffic(rate=TRAFFIC_RATE)
        print(f"Traffic: {TRAFFIC_RATE:g} requests/s to each host's current release\n")
        first = deploy(
            api, {"app": APP, "environment": ENV, "sha": repo.v1, "reason": "demo: first release"}
        )
        print()
        second = deploy(
            api, {"app": APP, "environment": ENV, "ref": "main", "reason": "demo: ship v2"}
        )
        print("\nGET /deploys/" + second["deploy_id"])
        print(json.dumps(_trim(second), indent=2))
        print()
        third = deploy(
            api, {"app": APP, "environment": ENV, "sha": repo.v3, "reason": "demo: ship v3"}
        )
        print(f"  (v3 serves for {SERVE_SECONDS:g}s: slower, some 5xx)\n")
        time.sleep(SERVE_SECONDS)
        rolled = api.post(
            f"/deploys/{third['deploy_id']}/rollback",
            {"reason": "demo: v3 is slower and fails 1 request in 10"},
        )
        print(f"POST /deploys/{third['deploy_id']}/rollback -> {rolled.status_code}")
        if rolled.status_code != 202:
            raise SystemExit(f"rollback was not accepted: {rolled.text}")
        rollback = watch(api, rolled.json()["deploy_id"])
        time.sleep(SERVE_SECONDS)  # v2 again, on the graphs
        stack.stop_traffic()
        problems = [] if first["status"] == "succeeded" else ["first deploy did not succeed"]
        if second["status"] != "succeeded" or second["sha"] != repo.v2:
            problems.append("second deploy did not succeed on v2")
        if third["status"] != "succeeded" or third["sha"] != repo.v3:
            problems.append("the v3 deploy did not succeed")
        if rollback["status"] != "succeeded" or rollback["sha"] != repo.v2:
            problems.append("the rollback of v3 did not bring v2 back")
        problems += prove(stack, repo.v2)
        problems += graphed(expected_succeeded=4)
        listing = api.get("/deploys?app=shop&environment=production&limit=5")
        print(f"\nGET /deploys -> {[(d['deploy_id'], d['status']) for d in listing['deploys']]}")
        problems += health(
            repo, listing["deploys"], traffic_since, options.state_dir / "dashboard.png"
        )
    finally:
        stack.stop()
    took = time.monotonic() - started
    if problems:
        print(f"\nDEMO FAILED after {took:.1f}s:", *problems, sep="\n  ")
        return 1
    print(f"\nDemo OK in {took:.1f}s: all hosts on {repo.v2[:12]}, each migration applied once.")
    return 0


def _trim(record: dict[str, Any]) -> dict[str, Any]:
    """The record, with each host's steps shortened to fit a terminal."""
    out = dict(record)
    out["hosts"] = [
        {
            **{k: v for k, v in host.items() if k != "steps"},
            "steps": [
                f"{s['command']}:{s['status']} exit={s['exit_code']} "
                f"{(s['stdout_tail'].strip().splitlines() or [''])[-1][:70]}"
                for s in host["steps"]
            ],
        }
        for host in record["hosts"]
    ]
    return out


if __name__ == "__main__":
    sys.exit(main())
