"""The Roadie-Deploy SSM Command document: parameters, the embedded host script, local rendering.

SSM substitutes ``{{ name }}`` textually into the script, so each parameter's ``allowedPattern``
is the security boundary: no pattern admits a quote, ``$``, a backtick, a newline or anything
else that could leave the single quotes of ``VAR='{{ name }}'``. The host script checks every
value again. :func:`render` does locally what SSM does in AWS (moto renders nothing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.domain.hostlog import DOCUMENT_STEP

DOCUMENT_NAME = "Roadie-Deploy"
SCRIPT_PATH = Path(__file__).resolve().parent / "host" / "roadie-deploy.sh"

_COMMAND_PATTERN = r"^[A-Za-z0-9 _./=:,+-]{0,256}$"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


@dataclass(frozen=True)
class Parameter:
    """One document parameter and the bash variable the script reads it from."""

    name: str
    variable: str
    pattern: str
    description: str
    default: str | None = None

    def as_document(self) -> dict[str, str]:
        """The parameter's entry in the document's ``parameters`` map."""
        entry = {
            "type": "String",
            "description": self.description,
            "allowedPattern": self.pattern,
        }
        if self.default is not None:
            entry["default"] = self.default
        return entry


PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "phase",
        "PHASE",
        r"^(stage|migrate|post_migrate|switch|verify|rollback)$",
        "Deploy phase to run on this host.",
    ),
    Parameter("app", "APP", r"^[a-z][a-z0-9-]{0,39}$", "Application name (its directory)."),
    Parameter("sha", "SHA", r"^[0-9a-f]{40}$", "Full commit SHA of the release."),
    Parameter(
        "previousSha",
        "PREVIOUS_SHA",
        r"^([0-9a-f]{40})?$",
        "Release to roll back to and to keep when pruning; empty on a first deploy.",
        "",
    ),
    Parameter("sourceKind", "SOURCE_KIND", r"^(git|s3)$", "Where releases come from.", "git"),
    Parameter(
        "sourceUrl",
        "SOURCE_URL",
        r"^([A-Za-z0-9/~.][A-Za-z0-9@:/._+~-]{0,511})?$",
        "git: a repository URL or path; s3: s3://bucket/prefix holding <app>/<sha>.tar.gz. "
        "Needed by stage only.",
        "",
    ),
    Parameter(
        "deployRoot",
        "DEPLOY_ROOT",
        r"^/[A-Za-z0-9._/-]{0,255}$",
        "Directory holding <app>/releases, <app>/current and <app>/shared.",
        "/srv/roadie",
    ),
    Parameter(
        "buildCommand",
        "BUILD_COMMAND",
        _COMMAND_PATTERN,
        "Run in the new release while staging (argv split on spaces, no shell).",
        "",
    ),
    Parameter(
        "migrateCommand",
        "MIGRATE_COMMAND",
        _COMMAND_PATTERN,
        "Pre-deployment migrations, with SKIP_POST_DEPLOYMENT_MIGRATIONS=1.",
        "",
    ),
    Parameter(
        "postMigrateCommand",
        "POST_MIGRATE_COMMAND",
        _COMMAND_PATTERN,
        "Post-deployment (contract) migrations, once every host runs the release.",
        "",
    ),
    Parameter(
        "healthCommand",
        "HEALTH_COMMAND",
        _COMMAND_PATTERN,
        "Health check run by verify in the current release.",
        "",
    ),
    Parameter(
        "restartCommand",
        "RESTART_COMMAND",
        _COMMAND_PATTERN,
        "Restart the app after switch and rollback.",
        "",
    ),
    Parameter(
        "keepReleases",
        "KEEP_RELEASES",
        r"^[0-9]{1,2}$",
        "Releases kept after a switch (current and previousSha always stay).",
        "5",
    ),
    Parameter(
        "executionTimeout",
        "EXECUTION_TIMEOUT",
        r"^[1-9][0-9]{0,4}$",
        "Seconds before the command is stopped.",
        "600",
    ),
)


def _script_body() -> list[str]:
    lines = SCRIPT_PATH.read_text(encoding="utf-8").splitlines()
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    if any("{{" in line for line in lines):
        raise ValueError(f"{SCRIPT_PATH} must not contain '{{{{' (SSM would substitute it)")
    return lines


def build_document() -> dict[str, Any]:
    """The SSM Command document (schema 2.2) that runs one phase of roadie-deploy.sh."""
    header = [
        "#!/bin/bash",
        f"# {DOCUMENT_NAME}: parameters (each checked by its allowedPattern before substitution)",
        *(f"{p.variable}='{{{{ {p.name} }}}}'" for p in PARAMETERS),
    ]
    return {
        "schemaVersion": "2.2",
        "description": "Roadie: run one deploy phase (stage, migrate, post_migrate, switch, "
        "verify, rollback) of an app release on this host.",
        "parameters": {p.name: p.as_document() for p in PARAMETERS},
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": DOCUMENT_STEP,  # SSM names the output's log streams after it
                "inputs": {
                    "timeoutSeconds": "{{ executionTimeout }}",
                    "runCommand": [*header, *_script_body()],
                },
            }
        ],
    }


def resolve_parameters(
    document: Mapping[str, Any], parameters: Mapping[str, str | Sequence[str]]
) -> dict[str, str]:
    """Every declared parameter's value (given or default), checked against its allowedPattern.

    Values may be plain strings or SSM's one-element lists (``{"sha": ["..."]}``).
    Raises ValueError naming the parameter that is unknown, missing or not allowed.
    """
    declared: Mapping[str, Mapping[str, str]] = document.get("parameters", {})
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(unknown)}")
    resolved: dict[str, str] = {}
    for name, spec in declared.items():
        if name in parameters:
            value = _single_value(name, parameters[name])
        elif "default" in spec:
            value = spec["default"]
        else:
            raise ValueError(f"parameter {name!r} is required")
        pattern = spec.get("allowedPattern")
        if pattern is not None and re.fullmatch(pattern, value) is None:
            raise ValueError(
                f"parameter {name!r}: value {value[:80]!r} does not match allowedPattern {pattern}"
            )
        resolved[name] = value
    return resolved


def _single_value(name: str, value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return value
    values = list(value)
    if len(values) != 1 or not isinstance(values[0], str):
        raise ValueError(f"parameter {name!r} takes exactly one string value")
    return values[0]


def render(document: Mapping[str, Any], parameters: Mapping[str, str | Sequence[str]]) -> str:
    """The shell script SSM would run: runCommand lines joined, ``{{ name }}`` substituted.

    One pass, so a value can never introduce a placeholder of its own.
    """
    values = resolve_parameters(document, parameters)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"document references undeclared parameter {name!r}")
        return values[name]

    lines: list[str] = []
    for step in document.get("mainSteps", []):
        if step.get("action") == "aws:runShellScript":
            lines.extend(step["inputs"]["runCommand"])
    return _PLACEHOLDER.sub(substitute, "\n".join(lines)) + "\n"
