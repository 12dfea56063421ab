"""A simulated host for tests: a sandbox directory where the rendered document runs with bash."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.ssm_document import render

SHOP_COMMANDS = {
    "buildCommand": "bin/build",
    "migrateCommand": "bin/migrate",
    "postMigrateCommand": "bin/post_migrate",
    "healthCommand": "bin/health",
    "restartCommand": "bin/restart",
}


@dataclass(frozen=True)
class Host:
    """One simulated host: a sandbox directory the rendered document runs in, as the agent does."""

    root: Path
    document: Mapping[str, Any]
    source_url: str
    path_prefix: str = ""

    @property
    def app_dir(self) -> Path:
        return self.root / "shop"

    def current(self) -> str | None:
        link = self.app_dir / "current"
        return os.readlink(link) if link.is_symlink() else None

    def run(self, phase: str, sha: str, **params: str) -> subprocess.CompletedProcess[str]:
        """Render the document for one phase and run it with bash, like the host agent."""
        values = {
            "phase": phase,
            "app": "shop",
            "sha": sha,
            "sourceUrl": self.source_url,
            **SHOP_COMMANDS,
            **params,
        }
        script = render(self.document, values)
        # The test's own python3 first: a version-manager shim costs ~0.1 s per call.
        path = [self.path_prefix, str(Path(sys.executable).parent), os.environ.get("PATH", "")]
        env = {
            "PATH": ":".join(p for p in path if p),
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "ROADIE_HOST_ROOT": str(self.root),
            "ROADIE_HOST_ID": self.root.name,
        }
        return subprocess.run(
            ["bash", "-c", script],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, phase: str, sha: str, **params: str) -> str:
        """Run a phase that must succeed; its stdout."""
        result = self.run(phase, sha, **params)
        assert result.returncode == 0, f"{phase} failed ({result.returncode}):\n{result.stderr}"
        return result.stdout
