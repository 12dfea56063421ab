"""The packager's pure parts: config rendering, the merge, the zip, the lint inputs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from chalicelib.config import BUNDLED_CONFIG, check_deployable, parse_pipeline
from chalicelib.domain.errors import ConfigError
from infra import package


def test_render_expands_the_source_url_and_nothing_else() -> None:
    text = BUNDLED_CONFIG.read_text()
    rendered = package.render_config(text, {"ROADIE_STATE_DIR": "/srv/state"})
    assert '"/srv/state/sources/shop"' in rendered
    assert "${ROADIE_STATE_DIR}/sources" not in rendered
    # comments that mention ${VAR} are text, not references
    assert rendered.count("\n") == text.count("\n")
    assert parse_pipeline(rendered, {}).apps["shop"].source.url == "/srv/state/sources/shop"


def test_render_names_the_key_of_an_unset_variable() -> None:
    with pytest.raises(ConfigError, match=r"^apps\.shop\.source\.url: .*ROADIE_STATE_DIR"):
        package.render_config(BUNDLED_CONFIG.read_text(), {})


def test_an_artifact_for_aws_refuses_a_local_source(tmp_path: Path) -> None:
    local = r"^apps\.shop\.source\.url: a git source in AWS must be a remote URL"
    with pytest.raises(ConfigError, match=local):
        package.load_config(BUNDLED_CONFIG, {"ROADIE_STATE_DIR": "/srv/state"}, local=False)
    text, pipeline = package.load_config(
        BUNDLED_CONFIG, {"ROADIE_STATE_DIR": "/srv/state"}, local=True
    )
    assert pipeline.apps["shop"].source.url in text


def test_the_example_config_is_deployable() -> None:
    _, pipeline = package.load_config(package.EXAMPLE_CONFIG, {}, local=False)
    check_deployable(pipeline)
    assert set(pipeline.apps["shop"].environments) == {"staging", "production"}


def test_merge_is_chalices_deep_merge_lists_replaced_dicts_merged() -> None:
    chalice = {"Resources": {"F": {"Type": "X", "Properties": {"A": 1, "L": [1, 2]}}}}
    ours = {"Resources": {"F": {"Properties": {"B": 2, "L": [3]}}, "G": {"Type": "Y"}}}
    assert package.merge(ours, chalice) == {
        "Resources": {
            "F": {"Type": "X", "Properties": {"A": 1, "B": 2, "L": [3]}},
            "G": {"Type": "Y"},
        }
    }


def test_the_zip_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "b.py").write_text("B = 2\n")
    (tree / "a.py").write_text("A = 1\n")
    first, second = tmp_path / "1.zip", tmp_path / "2.zip"
    package._write_zip(tree, first)
    (tree / "a.py").touch()  # a newer mtime changes nothing
    package._write_zip(tree, second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        assert zf.namelist() == ["a.py", "pkg/b.py"]


def test_the_definition_for_asl_validator_has_every_substitution_filled() -> None:
    template = {
        "Resources": {
            "RolloutStateMachine": {
                "Properties": {
                    "Definition": {"States": {"A": {"Resource": "${RolloutPollArn}"}}},
                    "DefinitionSubstitutions": {"RolloutPollArn": {"Fn::GetAtt": ["P", "Arn"]}},
                }
            }
        }
    }
    definition = package.state_machine_definition(template)
    assert definition["States"]["A"]["Resource"].endswith(":function:RolloutPollArn")
    template["Resources"]["RolloutStateMachine"]["Properties"]["DefinitionSubstitutions"] = {}
    with pytest.raises(package.PackageError, match="RolloutPollArn"):
        package.state_machine_definition(template)
    json.dumps(definition)
