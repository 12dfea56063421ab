"""What reading the deploy history costs as it grows: items read and capacity consumed.

``python -m bench.history [--sizes 10,1000,10000] [--days 365] [--window 30] [--seed 7]``

For each size, fresh deploy tables in moto (in process: ``moto.mock_aws``, no embedded stack,
nothing but DynamoDB is involved) get that many deploy records, written with BatchWriteItem
(PynamoDB's ``batch_write``), spread evenly at random over ``--days`` days before a fixed
"now": 80% to ``shop/production``, 20% to ``shop/staging``. Then the two reads the API makes
run through the real adapter (``DeployRepository``):

1. "latest 20 deploys of an environment": ``GET /deploys?app=shop&environment=production
   &limit=20`` (``DeployRepository.list``: a Query of ``by_environment``, newest first, one
   page of 20);
2. a ``--window``-day DORA query: ``GET /metrics/dora?...&days=30`` (``DeployRepository.window``,
   a Query of ``by_environment`` with ``created_sort >= since`` as its key condition, then
   ``domain/dora.compute``).

Every DynamoDB call the adapter makes is intercepted at botocore's ``_make_api_call``: it asks
for ``ReturnConsumedCapacity=TOTAL`` and records ``ScannedCount`` (items read), ``Count`` and
``ConsumedCapacity``. moto answers a constant 1.0 capacity unit per call whatever it read, so
that column counts calls, not work; the ``est. RCU`` column applies DynamoDB's own rule to the
items each page returned (eventually consistent: 0.5 RCU per 4 KB of summed item size, rounded
up per page; item size: attribute names plus values, UTF-8; a filtered page is charged for
the items it read, estimated at the returned items' mean size). For contrast it also prints
what the same window would read as a FilterExpression on the environment's partition (which
Roadie never does). It asserts what must hold: the
first read's items do not grow with the history (ratio 1.0 from the smallest to the largest
size) and the second reads exactly the records in the window, never the history.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

APP = "shop"
ENVIRONMENTS = (("production", 0.8), ("staging", 0.2))
NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
TABLE = "bench-history-deploys"
REGION = "us-east-1"
LATEST = 20


@dataclass
class Reads:
    """The DynamoDB calls of one measured read."""

    calls: list[str] = field(default_factory=list)
    scanned: int = 0
    returned: int = 0
    moto_capacity: float = 0.0
    bytes_returned: int = 0
    pages: list[int] = field(default_factory=list)  # ScannedCount of each page

    def record(self, operation: str, answer: Mapping[str, Any]) -> None:
        self.calls.append(operation)
        self.scanned += int(answer.get("ScannedCount", 0))
        self.returned += int(answer.get("Count", 0))
        consumed = answer.get("ConsumedCapacity") or {}
        self.moto_capacity += float(consumed.get("CapacityUnits", 0.0))
        items = answer.get("Items", [])
        self.bytes_returned += sum(item_size(item) for item in items)
        self.pages.append(int(answer.get("ScannedCount", 0)))

    @property
    def est_rcu(self) -> float:
        """DynamoDB's charge for what each page read: 0.5 RCU per 4 KB, rounded up per page,
        at least 0.5; items a filter dropped are counted at the returned items' mean size."""
        mean = self.bytes_returned / self.returned if self.returned else 0.0
        return sum(0.5 * max(1, math.ceil(scanned * mean / 4096)) for scanned in self.pages)


def item_size(value: Any, name: str = "") -> int:
    """An item's size as DynamoDB counts it, near enough: names plus values (UTF-8 bytes;
    a number about a byte per two digits; one byte per type overhead of maps and lists)."""
    size = len(name.encode())
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _TYPES:
        kind, raw = next(iter(value.items()))
        if kind == "S":
            return size + len(raw.encode())
        if kind == "N":
            return size + len(raw.lstrip("-").replace(".", "")) // 2 + 1
        if kind in ("BOOL", "NULL"):
            return size + 1
        if kind == "M":
            return size + 3 + sum(item_size(v, k) for k, v in raw.items())
        if kind == "L":
            return size + 3 + sum(item_size(v) for v in raw)
        return size + len(str(raw))
    return size + sum(item_size(v, k) for k, v in value.items())  # a whole item


_TYPES = frozenset({"S", "N", "BOOL", "NULL", "M", "L", "B", "SS", "NS", "BS"})


@contextmanager
def metered() -> Iterator[Reads]:
    """Every DynamoDB call made inside the block, asking for its consumed capacity."""
    import botocore.client

    reads = Reads()
    original = botocore.client.BaseClient._make_api_call

    def make_api_call(client: Any, operation: str, params: Any) -> Any:
        params = {**(params or {}), "ReturnConsumedCapacity": "TOTAL"}
        answer = original(client, operation, params)
        reads.record(operation, answer)
        return answer

    botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
    try:
        yield reads
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]


@dataclass(frozen=True)
class Sized:
    size: int
    write_seconds: float
    in_environment: int
    in_window: int
    latest: Reads
    dora: Reads
    dora_answer: dict[str, Any]
    filtered: Reads  # for contrast: the window as a FilterExpression instead of a key condition


def _records(size: int, days: int, seed: int) -> list[Any]:
    from chalicelib.domain.model import Deploy, DeployStatus
    from chalicelib.services.clock import iso

    rng = random.Random(seed)
    outcomes = [
        (DeployStatus.SUCCEEDED, 0.85),
        (DeployStatus.FAILED, 0.06),
        (DeployStatus.ROLLED_BACK, 0.04),
        (DeployStatus.CANCELLED, 0.03),
        (DeployStatus.ERRORED, 0.02),
    ]
    records = []
    for n in range(size):
        created = NOW - timedelta(seconds=rng.uniform(60, days * 86400))
        environment = rng.choices([e for e, _ in ENVIRONMENTS], [w for _, w in ENVIRONMENTS])[0]
        status = rng.choices([s for s, _ in outcomes], [w for _, w in outcomes])[0]
        records.append(
            Deploy(
                deploy_id=f"d-{created:%Y%m%dt%H%M%S}-{n:08x}",
                app=APP,
                environment=environment,
                sha=f"{rng.getrandbits(160):040x}",
                requested_by="bench",
                requested_via="github",
                created_at=iso(created),
                status=status,
                started_at=iso(created),
                finished_at=iso(created + timedelta(minutes=rng.uniform(3, 15))),
                commit_at=iso(created - timedelta(hours=rng.uniform(0.1, 48))),
                reason="push to main: bench record",
                host_count=5,
                batch_size=2,
                version=1,
            )
        )
    return records


def measure(size: int, days: int, window: int, seed: int) -> Sized:
    """One size, on fresh tables (moto must be active and the models configured)."""
    from chalicelib.adapters.dynamo import DeployModel, DeployRepository
    from chalicelib.adapters.dynamo.deploys import _to_item
    from chalicelib.domain import dora
    from chalicelib.services.clock import iso

    if DeployModel.exists():
        DeployModel.delete_table()
    DeployModel.create_table(wait=False, billing_mode="PAY_PER_REQUEST")
    records = _records(size, days, seed)
    started = time.perf_counter()
    with DeployModel.batch_write() as batch:  # BatchWriteItem, 25 items a call
        for record in records:
            batch.save(_to_item(record))
    write_seconds = time.perf_counter() - started
    since = iso(dora.window_start(NOW, window))
    production = [r for r in records if r.environment == "production"]
    repository = DeployRepository()
    with metered() as latest:
        page, _ = repository.list(app=APP, environment="production", limit=LATEST)
    assert [d.deploy_id for d in page] == [
        d.deploy_id
        for d in sorted(production, key=lambda d: (d.created_at, d.deploy_id), reverse=True)
    ][:LATEST], "the latest page is not the newest records"
    with metered() as reads:
        found = repository.window(APP, "production", since)
        answer = dora.compute(APP, "production", found, now=NOW, days=window).to_json()
    in_window = sum(1 for r in production if r.created_at >= since)
    with metered() as filtered:  # what the window would cost as a filter: never done by Roadie
        kept = list(
            DeployModel.by_environment.query(
                f"{APP}#production", filter_condition=DeployModel.created_sort >= since
            )
        )
    assert len(kept) == in_window
    return Sized(size, write_seconds, len(production), in_window, latest, reads, answer, filtered)


@contextmanager
def moto_tables() -> Iterator[None]:
    """moto in process, the deploy model on a bench table, AWS credentials that go nowhere."""
    names = (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_PROFILE",
    )
    before = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
    )
    try:
        import moto

        from chalicelib.adapters import dynamo

        meta: Any = dynamo.DeployModel.Meta
        saved = (meta.table_name, getattr(meta, "region", None))
        with moto.mock_aws():
            dynamo.configure({dynamo.DeployModel: TABLE}, REGION)
            try:
                yield
            finally:
                meta.table_name, meta.region = saved
                dynamo.DeployModel._connection = None
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def report(results: Sequence[Sized], window: int, days: int) -> list[str]:
    """The printed table and the checks; raises AssertionError when a check fails."""
    lines = [
        f"  {len(results)} sizes; records over {days} days before {NOW:%Y-%m-%d %H:%M} UTC, "
        f"80% shop/production; DORA window {window} days",
        "",
        "  records  prod. recs  in window  write s |  latest 20: calls  items read  moto CU  "
        "est. RCU |  DORA 30d: calls  items read  moto CU  est. RCU",
    ]
    for r in results:
        lines.append(
            f"  {r.size:7d}  {r.in_environment:10d}  {r.in_window:9d}  {r.write_seconds:7.2f} |"
            f"  {len(r.latest.calls):16d}  {r.latest.scanned:10d}  {r.latest.moto_capacity:7.1f}"
            f"  {r.latest.est_rcu:8.1f} |  {len(r.dora.calls):15d}  {r.dora.scanned:10d}"
            f"  {r.dora.moto_capacity:7.1f}  {r.dora.est_rcu:8.1f}"
        )
    lines.append("")
    for r in results:
        assert set(r.latest.calls) == {"Query"} and set(r.dora.calls) == {"Query"}, "not a Query"
        assert r.latest.scanned == min(LATEST, r.in_environment), "latest 20 read more than 20"
        assert r.dora.scanned == r.in_window, "the DORA query read outside its window"
        frequency = r.dora_answer["deployment_frequency"]
        lines.append(
            f"  {r.size:7d} records: DORA read {r.dora.scanned} items = the {r.in_window} records"
            f" in the window ({r.dora.scanned / r.size:.3f} of the history); "
            f"{frequency['successful_deploys']} successes, "
            f"{frequency['per_day']} a day, change failure rate "
            f"{r.dora_answer['change_failure_rate']['rate']}, median lead time "
            f"{r.dora_answer['lead_time']['median_seconds']} s; the same window as a filter "
            f"instead of a key condition would read {r.filtered.scanned} items in "
            f"{len(r.filtered.calls)} calls ({r.filtered.est_rcu:.1f} est. RCU)"
        )
    # The latest page reads the page and nothing more: min(20, the environment's records).
    # Items read over that bound is 1.0 at every size; between sizes it is the ratio the
    # brief asks for (10 records hold fewer than 20, so their page is all 10 of them).
    for r in results:
        bound = min(LATEST, r.in_environment)
        lines.append(
            f"  latest 20 at {r.size:5d} records: items read {r.latest.scanned} / "
            f"min(20, records in the environment) {bound} = {r.latest.scanned / bound:.1f}"
        )
    smallest, largest = results[0], results[-1]
    if len(results) > 1:
        per_page = [r.latest.scanned / min(LATEST, r.in_environment) for r in results]
        ratio = per_page[-1] / per_page[0]
        lines.append(
            f"  latest 20, items read per page bound at {largest.size} vs {smallest.size} "
            f"records: ratio {ratio:.1f} (items read {largest.latest.scanned} vs "
            f"{smallest.latest.scanned}; {largest.latest.est_rcu:.1f} vs "
            f"{smallest.latest.est_rcu:.1f} est. RCU)"
        )
        assert ratio == 1.0, "the latest-20 read grows with the history"
        full = [r for r in results if r.in_environment >= LATEST]
        if len(full) > 1:
            steady = full[-1].latest.scanned / full[0].latest.scanned
            lines.append(
                f"  latest 20, items read at {full[-1].size} vs {full[0].size} records "
                f"(both hold over 20): ratio {steady:.1f}"
            )
            assert steady == 1.0, "the latest-20 read grows with the history"
        lines.append(
            f"  DORA {window}d, items read at {largest.size} vs {smallest.size} records: "
            f"{largest.dora.scanned} vs {smallest.dora.scanned}, each = the records in its "
            "window (bounded by the window, not the history)"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__)
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--window", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    print("history: reading the deploy history as it grows (items read, capacity)", flush=True)
    print(
        f"  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, moto in process (mock_aws), "
        "records written with BatchWriteItem",
        flush=True,
    )
    with moto_tables():
        results = [measure(size, args.days, args.window, args.seed) for size in sizes]
    try:
        lines = report(results, args.window, args.days)
    except AssertionError as exc:
        print(f"  FAILED: {exc}", flush=True)
        return 1
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
