"""What a deploy record says when a rollout ends badly after hosts switched: which hosts are
off the environment's release (``diverged``), or that a contract migration failed with the new
release live everywhere. Read from the recorded plan and the hosts' own output."""

from __future__ import annotations

import re

from ..domain import lifecycle
from ..domain.fleet import HostRelease, describe
from ..domain.model import Deploy
from ..domain.rollout import RolloutPlan

# A migration file named in a tool's output: ``003_drop_legacy_sku.sql``, ``20240501_add.rb``.
MIGRATION_RE = re.compile(r"\b(\d+_[A-Za-z0-9_]+\.(?:sql|rb|py))\b")


def host_names(deploy: Deploy) -> dict[str, str]:
    """The hosts' Name tags, from the recorded plan."""
    names = deploy.plan.get("host_names")
    return {str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}


def plan_hosts(deploy: Deploy) -> list[str]:
    """The instance ids the deploy's recorded plan targets."""
    if "rollback" in deploy.plan:
        return [h.instance_id for h in RolloutPlan.from_json(deploy.plan).hosts]
    listed = deploy.plan.get("hosts")
    return [str(h) for h in listed] if isinstance(listed, list) else []


def divergence(deploy: Deploy, off: list[HostRelease], release: str | None) -> dict[str, object]:
    """The record's error for a rollout that ended with hosts off the environment's release;
    the failure that led there is kept as ``cause``."""
    live = release[:12] if release else "no release"
    return lifecycle.failure(
        "diverged",
        deploy.phase.value,
        f"the fleet is mixed: {describe(off)}, while the environment's release is {live}; "
        "new deploys wait (a force deploy may run) and the reconciler retries the rollback "
        "until every host runs one release",
        diverged_hosts=[r.to_json() for r in off],
        host=off[0].instance_id if off else None,
        cause=deploy.error,
    )


def contract_failure(deploy: Deploy) -> dict[str, object]:
    """The record's error after a failed post-deploy (contract) migration: every host already
    runs the new release (a rollback would not undo a migration), and which migration failed."""
    error = dict(deploy.error or {})
    tails = f"{error.get('stderr_tail') or ''}\n{error.get('stdout_tail') or ''}"
    named = MIGRATION_RE.findall(tails)
    which = named[-1] if named else "a post-deploy migration (see the host's output)"
    said = [line.strip() for line in tails.splitlines() if "failed" in line]
    # the migration tool's own words first; the deploy script's summary line otherwise
    own = [line for line in said if not line.startswith("roadie:")]
    reason = (own or said or [str(error.get("message", ""))])[-1]
    error["message"] = (
        f"the new release {deploy.sha[:12]} is live on every host; its post-deploy (contract) "
        f"migration {which} failed: {reason}"
    )
    error["live_on_every_host"] = True
    error["migration"] = named[-1] if named else None
    return error
