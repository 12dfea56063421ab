"""scripts/package.sh end to end, offline: merge template + chalice package + cfn-lint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra import template

ROOT = Path(template.__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
BUDGET_SECONDS = 40


def _project_copy(dest: Path) -> Path:
    """What `chalice package` reads, with an EMPTY requirements.txt.

    The real requirements need pip to download wheels (or Chalice's cached zip): the copy keeps
    the run offline and fast, and cfn-lint only looks at sam.json, not at the zip's contents.
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copy2(ROOT / "app.py", dest / "app.py")
    for package in ("chalicelib", "infra"):
        shutil.copytree(ROOT / package, dest / package, ignore=ignore)
    (dest / ".chalice").mkdir()
    for config in [ROOT / ".chalice" / "config.json", *(ROOT / ".chalice").glob("policy-*.json")]:
        shutil.copy2(config, dest / ".chalice" / config.name)
    (dest / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "package.sh", dest / "scripts" / "package.sh")
    (dest / "requirements.txt").write_text("")
    return dest


def test_package_script_output_passes_cfn_lint(tmp_path: Path) -> None:
    assert os.access(ROOT / "scripts" / "package.sh", os.X_OK), "package.sh is executable"
    project = _project_copy(tmp_path)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["VENV"] = str(VENV)
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(project / "scripts" / "package.sh"), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    elapsed = time.monotonic() - started
    report = result.stdout + result.stderr
    errors = re.findall(r"^E\d{4} .*$", report, re.MULTILINE)
    assert errors == [], report
    assert result.returncode == 0, report
    if elapsed > BUDGET_SECONDS:
        pytest.skip(f"package + cfn-lint passed but took {elapsed:.0f}s (> {BUDGET_SECONDS}s)")

    sam = json.loads((out / "sam.json").read_text())
    resources = sam["Resources"]
    untyped = [name for name, r in resources.items() if "Type" not in r]
    assert untyped == [], "merged onto a resource Chalice did not generate"
    functions = [template.API_HANDLER, *template.function_logical_ids().values()]
    for logical_id in functions:
        assert resources[logical_id]["Type"] == "AWS::Serverless::Function"
        variables = resources[logical_id]["Properties"]["Environment"]["Variables"]
        assert variables["POWERTOOLS_SERVICE_NAME"] == "roadie", "deep merge kept config.json's"
        assert variables["ROADIE_DEPLOYS_TABLE"] == {"Ref": "DeploysTable"}
    kinds = {r["Type"] for r in resources.values()}
    assert {
        "AWS::DynamoDB::Table",
        "AWS::SSM::Document",
        "AWS::StepFunctions::StateMachine",
        "AWS::CloudWatch::Dashboard",
        "AWS::Logs::LogGroup",
    } <= kinds
    # each role's policy is the merge template's (infra/iam.py), not .chalice/policy-dev.json
    merge = json.loads((out / "merge-template.json").read_text())["Resources"]
    for logical_id in [*functions, "Reconcile"]:
        role = resources[logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        assert resources[role]["Properties"]["Policies"] == merge[role]["Properties"]["Policies"]
