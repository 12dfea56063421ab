"""Branch heads are items of the environments table: they must fit its key and never pass for
an environment. (The conditional write itself runs against moto in
tests/functional/test_webhooks.py.)"""

from __future__ import annotations

from chalicelib.adapters import dynamo
from chalicelib.domain.model import NAME_RE
from chalicelib.services.webhooks import head_key
from infra import template


def test_a_branch_head_has_the_environments_tables_key_schema() -> None:
    heads = dynamo.BranchHeadModel._get_schema()
    environments = dynamo.EnvironmentModel._get_schema()
    assert heads["key_schema"] == environments["key_schema"]
    assert heads["attribute_definitions"] == environments["attribute_definitions"]
    assert not heads["global_secondary_indexes"] and not heads["local_secondary_indexes"]


def test_branch_heads_add_no_table_and_live_in_the_template_environments_table() -> None:
    assert dynamo.BranchHeadModel not in dynamo.MODELS
    (table,) = (t for t in template.names("dev").tables if t.model is dynamo.EnvironmentModel)
    props = template.table_properties(dynamo.EnvironmentModel, table.name)
    key = dynamo.BranchHeadModel._hash_key_attribute().attr_name
    assert props["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}]


def test_branch_head_attributes_are_not_environment_attributes() -> None:
    heads = set(dynamo.BranchHeadModel.get_attributes())
    environments = set(dynamo.EnvironmentModel.get_attributes())
    names = {a.attr_name for a in dynamo.BranchHeadModel.get_attributes().values()}
    env_names = {a.attr_name for a in dynamo.EnvironmentModel.get_attributes().values()}
    assert names & env_names == {"env_key"} and not (heads - {"key"}) & environments


def test_no_branch_head_key_is_an_environment_key() -> None:
    """An environment's key is ``<app>#<env>`` with names NAME_RE allows: a head's key has a
    third ``#``-part and a "/" in it, so its "environment" part could never be a name."""
    for key in (
        head_key("github", "acme/shop", "main"),
        head_key("gitlab", "group/sub/project", "release/1.0"),
    ):
        app, _, environment = (dynamo.BRANCH_HEAD_PREFIX + key).partition("#")
        assert NAME_RE.match(app)  # "branch-head"
        assert not NAME_RE.match(environment)
