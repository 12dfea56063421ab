"""infra.package end to end: chalice package (cached), the merge, the config in the zip."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from chalicelib.domain.errors import ConfigError
from infra import package, template


@pytest.fixture(scope="module")
def built() -> package.Package:
    return package.build("dev", package.EXAMPLE_CONFIG, environ={})


def test_the_zip_bundles_the_rendered_config_once_and_compiled_code(
    built: package.Package,
) -> None:
    with zipfile.ZipFile(built.zip) as zf:
        names = zf.namelist()
        assert names.count(package.CONFIG_IN_PACKAGE) == 1
        bundled = zf.read(package.CONFIG_IN_PACKAGE).decode()
        assert "app.py" in names
        compiled = [n for n in names if n.startswith("chalicelib/") and n.endswith(".pyc")]
        assert "chalicelib/__pycache__/config.cpython-311.pyc" in compiled
        assert any(n.startswith("botocore/") for n in names), "dependencies are vendored"
    assert bundled == package.EXAMPLE_CONFIG.read_text()
    assert (built.task_root / package.CONFIG_IN_PACKAGE).read_text() == bundled
    assert (built.task_root / "app.py").exists()


def test_the_template_is_chalices_with_the_merge_template_of_the_config(
    built: package.Package,
) -> None:
    sam = built.load_template()
    merge = template.build_merge_template("dev", built.pipeline)
    for logical_id, resource in merge["Resources"].items():
        assert logical_id in sam["Resources"]
        if "Type" in resource:
            assert sam["Resources"][logical_id]["Type"] == resource["Type"]
    functions = [k for k, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]
    assert len(functions) >= 6
    for logical_id in functions:
        assert sam["Resources"][logical_id]["Properties"]["CodeUri"] == "./deployment.zip"
    json.dumps(sam)


def test_a_second_build_reuses_the_package_and_another_config_reuses_the_code(
    built: package.Package, tmp_path: Path
) -> None:
    again = package.build("dev", package.EXAMPLE_CONFIG, environ={})
    assert again.directory == built.directory
    other = tmp_path / "pipeline.toml"
    other.write_text(package.EXAMPLE_CONFIG.read_text().replace("batch_size = 1", "batch_size = 2"))
    changed = package.build("dev", other, environ={})
    assert changed.directory != built.directory
    assert changed.zip.stat().st_size == pytest.approx(built.zip.stat().st_size, abs=64)


def test_a_bad_config_fails_the_package_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "pipeline.toml"
    bad.write_text(package.EXAMPLE_CONFIG.read_text().replace("batch_size = 1", "batch_size = 0"))
    with pytest.raises(ConfigError, match=r"^apps\.shop\.environments\.staging\.batch_size"):
        package.build("dev", bad, environ={})
