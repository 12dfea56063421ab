"""The state machine definition passes asl-validator (npm, pinned in tools/package.json)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import BUNDLED_CONFIG, load_pipeline
from infra import template

ROOT = Path(template.__file__).resolve().parents[1]
VALIDATOR = ROOT / "tools" / "node_modules" / ".bin" / "asl-validator"
PARTITION, REGION, ACCOUNT = "aws", "eu-central-1", "123456789012"
DEMO = load_pipeline(BUNDLED_CONFIG, {"ROADIE_STATE_DIR": "/srv/roadie-state"})


def validate(definition: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if not VALIDATOR.exists():
        pytest.fail(
            f"{VALIDATOR.relative_to(ROOT)} is missing: run scripts/bootstrap.sh "
            "(npm ci --prefix tools); the test command needs Node.js and npm"
        )
    path = tmp_path / "definition.asl.json"
    path.write_text(json.dumps(definition))
    return subprocess.run(
        [str(VALIDATOR), "--json-path", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def deployed_definition(stage: str = "dev") -> dict[str, Any]:
    """The template's definition with each ${...Arn} placeholder replaced by the ARN
    CloudFormation would substitute (the function's name in the stage)."""
    props = template.build_merge_template(stage, DEMO)["Resources"][template.STATE_MACHINE][
        "Properties"
    ]
    text = json.dumps(props["Definition"])
    names = template.names(stage)
    functions = template.all_functions()
    for placeholder, value in props["DefinitionSubstitutions"].items():
        logical_id = value["Fn::GetAtt"][0]
        function_arn = (
            f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:"
            f"{names.function_name(functions[logical_id])}"
        )
        text = text.replace(f"${{{placeholder}}}", function_arn)
    assert "${" not in text, "every placeholder substituted"
    return dict(json.loads(text))


def test_the_deployed_definition_is_valid_asl(tmp_path: Path) -> None:
    result = validate(deployed_definition(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout


def test_a_broken_definition_is_rejected(tmp_path: Path) -> None:
    broken = deployed_definition()
    broken["States"]["Route"]["Default"] = "NoSuchState"  # a transition to nowhere
    result = validate(broken, tmp_path)
    assert result.returncode != 0
    assert "NoSuchState" in result.stdout + result.stderr


def test_a_state_without_its_required_fields_is_rejected(tmp_path: Path) -> None:
    broken = deployed_definition()
    del broken["States"]["Dispatch"]["Resource"]
    result = validate(broken, tmp_path)
    assert result.returncode != 0
