"""The Roadie-Deploy document: its shape, the script it embeds, and render()'s security boundary."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from infra.ssm_document import DOCUMENT_NAME, PARAMETERS, SCRIPT_PATH, build_document, render

SHA = "a" * 40
VALID = {
    "phase": "stage",
    "app": "shop",
    "sha": SHA,
    "previousSha": "b" * 40,
    "sourceKind": "git",
    "sourceUrl": "/srv/git/shop.git",
    "deployRoot": "/srv/roadie",
    "buildCommand": "bin/build --env=production",
    "migrateCommand": "bundle exec rails db:migrate",
    "postMigrateCommand": "bin/post_migrate",
    "healthCommand": "curl -fsS http://127.0.0.1:3000/healthz",
    "restartCommand": "sudo systemctl restart puma.service",
    "keepReleases": "5",
    "executionTimeout": "600",
}
HOSTILE = ["'", "x'y", ";", "a;b", "$(id)", "`id`", "\n", "ok\nrm", "{{ sha }}", '"', "a|b", "&"]


def test_document_has_one_run_shell_script_step_with_a_parameterised_timeout() -> None:
    document = build_document()

    assert DOCUMENT_NAME == "Roadie-Deploy"
    assert document["schemaVersion"] == "2.2"
    [step] = document["mainSteps"]
    assert step["action"] == "aws:runShellScript"
    assert step["name"] == "deploy"
    assert step["inputs"]["timeoutSeconds"] == "{{ executionTimeout }}"
    assert all(isinstance(line, str) for line in step["inputs"]["runCommand"])


def test_every_parameter_is_a_described_string_with_an_anchored_pattern() -> None:
    parameters = build_document()["parameters"]

    assert set(parameters) == set(VALID)
    required = {name for name, spec in parameters.items() if "default" not in spec}
    assert required == {"phase", "app", "sha"}
    for name, spec in parameters.items():
        assert spec["type"] == "String", name
        assert spec["description"], name
        assert spec["allowedPattern"].startswith("^"), name
        assert spec["allowedPattern"].endswith("$"), name
        if "default" in spec:
            assert re.fullmatch(spec["allowedPattern"], spec["default"]), name


def test_header_assigns_each_parameter_in_single_quotes_then_the_script_follows() -> None:
    lines = build_document()["mainSteps"][0]["inputs"]["runCommand"]
    body = SCRIPT_PATH.read_text().splitlines()[1:]

    assert lines[0] == "#!/bin/bash"
    header = lines[2 : 2 + len(PARAMETERS)]
    assert header == [f"{p.variable}='{{{{ {p.name} }}}}'" for p in PARAMETERS]
    assert lines[2 + len(PARAMETERS) :] == body
    assert not any("{{" in line for line in body)


def test_document_fits_the_ssm_size_limit() -> None:
    assert len(json.dumps(build_document()).encode()) < 64 * 1024


def test_script_checks_the_same_patterns_as_the_document() -> None:
    script = SCRIPT_PATH.read_text()
    command_re = re.search(r"^COMMAND_RE='([^']*)'$", script, re.M)
    assert command_re
    checks = dict(
        re.findall(r'^check (\w+) "\$\w+" (?:\'([^\']*)\'|"\$COMMAND_RE")$', script, re.M)
    )
    found = {name: pattern or command_re.group(1) for name, pattern in checks.items()}

    assert found == {p.variable: p.pattern for p in PARAMETERS}


def test_render_substitutes_values_and_defaults() -> None:
    script = render(build_document(), {"phase": "verify", "app": "shop", "sha": SHA})

    assert f"SHA='{SHA}'\n" in script
    assert "PHASE='verify'\n" in script
    assert "PREVIOUS_SHA=''\n" in script
    assert "DEPLOY_ROOT='/srv/roadie'\n" in script
    assert "KEEP_RELEASES='5'\n" in script
    assert "{{" not in script
    assert subprocess.run(["bash", "-n"], input=script, text=True, check=False).returncode == 0


def test_render_takes_ssm_style_one_element_lists() -> None:
    script = render(build_document(), {"phase": ["stage"], "app": ["shop"], "sha": [SHA]})

    assert "PHASE='stage'\n" in script


def test_render_tolerates_any_whitespace_inside_braces() -> None:
    document: dict[str, Any] = {
        "parameters": {"x": {"type": "String", "allowedPattern": "^[a-z]+$"}},
        "mainSteps": [
            {"action": "aws:runShellScript", "inputs": {"runCommand": ["{{x}} {{  x }} {{ x}}"]}}
        ],
    }

    assert render(document, {"x": "ok"}) == "ok ok ok\n"


@pytest.mark.parametrize("name", sorted(VALID))
@pytest.mark.parametrize("hostile", HOSTILE)
def test_render_rejects_values_that_could_leave_the_quotes(name: str, hostile: str) -> None:
    for value in (hostile, VALID[name] + hostile):
        with pytest.raises(ValueError, match=name):
            render(build_document(), {**VALID, name: value})


@pytest.mark.parametrize("name", sorted(VALID))
def test_render_rejects_a_valid_value_with_a_trailing_newline(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        render(build_document(), {**VALID, name: VALID[name] + "\n"})


def test_render_accepts_all_valid_values() -> None:
    script = render(build_document(), VALID)

    assert "BUILD_COMMAND='bin/build --env=production'\n" in script


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"app": "shop", "sha": SHA}, "'phase' is required"),
        ({**VALID, "bogus": "1"}, "unknown parameter"),
        ({**VALID, "sha": [SHA, SHA]}, "'sha' takes exactly one"),
        ({**VALID, "sourceUrl": "-uevil"}, "sourceUrl"),
        ({**VALID, "executionTimeout": "0"}, "executionTimeout"),
        ({**VALID, "app": "Shop"}, "app"),
    ],
)
def test_render_refuses_bad_parameter_sets(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render(build_document(), params)
