"""Settings from the environment, and the pipeline config: loading, defaults, validation.

Every validation error must start with the dotted key it is about, so the tests match on
``^<key>: `` and build each bad config by changing one value of a known-good one.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import (
    BUNDLED_CONFIG,
    ScmConfig,
    Settings,
    check_deployable,
    load_pipeline,
    parse_pipeline,
)
from chalicelib.domain.errors import ConfigError, NotFoundError
from chalicelib.domain.rollout import BatchSize, PhaseTimeouts
from infra.ssm_document import PARAMETERS

ENV = {"ROADIE_STATE_DIR": "/x"}
PROD = r"^apps\.shop\.environments\.production\."
SHOP = r"^apps\.shop\."

GOOD: dict[str, Any] = {
    "apps": {
        "shop": {
            "repository": "roadie-demo/shop",
            "source": {"kind": "git", "url": "${ROADIE_STATE_DIR}/sources/shop"},
            "deploy_root": "/srv/roadie",
            "keep_releases": 5,
            "commands": {
                "build": "bin/build",
                "migrate": "bin/migrate",
                "post_migrate": "bin/post_migrate",
                "health": "bin/health",
                "restart": "bin/restart",
            },
            "environments": {
                "staging": {
                    "branch": "staging",
                    "hosts": {"tags": {"App": "shop", "Environment": "staging"}},
                    "batch_size": 1,
                },
                "production": {
                    "branch": "main",
                    "hosts": {"tags": {"App": "shop", "Environment": "production"}},
                    "batch_size": 2,
                    "migration_host": "first",
                    "trigger": "push",
                    "tags": ["v*"],
                    "timeouts": {"stage": 600, "migrate": 900},
                },
            },
        }
    }
}


# --- a tiny TOML writer: everything as inline tables, enough for these tests ---------------


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        body = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + body + " }" if body else "{}"
    raise TypeError(value)


def to_toml(doc: dict[str, Any]) -> str:
    return "\n".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items()) + "\n"


def good() -> dict[str, Any]:
    return copy.deepcopy(GOOD)


def shop(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["apps"]["shop"]


def prod(doc: dict[str, Any]) -> dict[str, Any]:
    return shop(doc)["environments"]["production"]


def parse(doc: dict[str, Any], environ: dict[str, str] | None = None):
    return parse_pipeline(to_toml(doc), ENV if environ is None else environ)


# --- the bundled config -----------------------------------------------------------------------


def test_bundled_config_loads_the_shop_app() -> None:
    config = load_pipeline(BUNDLED_CONFIG, {"ROADIE_STATE_DIR": "/x"})
    assert set(config.apps) == {"shop"}
    app = config.app("shop")
    assert app.repository == "roadie-demo/shop"
    assert (app.source.kind, app.source.url) == ("git", "/x/sources/shop")
    assert app.deploy_root == "/srv/roadie"
    assert app.keep_releases == 5
    assert app.commands == {
        "build": "bin/build",
        "migrate": "bin/migrate",
        "post_migrate": "bin/post_migrate",
        "health": "bin/health",
        "restart": "bin/restart",
    }
    assert set(app.environments) == {"staging", "production"}


def test_bundled_production_switches_two_at_a_time_and_runs_post_migrations() -> None:
    config = load_pipeline(BUNDLED_CONFIG, {"ROADIE_STATE_DIR": "/x"})
    _, production = config.environment("shop", "production")
    assert production.branch == "main"
    assert production.host_tags == {"App": "shop", "Environment": "production"}
    assert production.policy.batch_size == BatchSize(2)
    assert production.policy.migration_host == "first"
    assert production.policy.run_migrations is True
    assert production.policy.run_post_migrations is True
    assert production.policy.timeouts == PhaseTimeouts(
        stage=600, migrate=900, switch=120, verify=120, post_migrate=900, rollback=120
    )
    assert production.trigger == "push"
    assert production.tag_patterns == ("v*",)


def test_bundled_staging_uses_defaults_for_what_it_does_not_say() -> None:
    config = load_pipeline(BUNDLED_CONFIG, {"ROADIE_STATE_DIR": "/x"})
    _, staging = config.environment("shop", "staging")
    assert staging.branch == "staging"
    assert staging.policy.batch_size == BatchSize(1)
    assert staging.policy.timeouts == PhaseTimeouts()
    assert staging.tag_patterns == ()


def test_bundled_config_needs_its_state_dir_variable() -> None:
    with pytest.raises(ConfigError, match=r"^apps\.shop\.source\.url: .*ROADIE_STATE_DIR"):
        load_pipeline(BUNDLED_CONFIG, {})


def test_load_pipeline_reports_an_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"^cannot read pipeline config .*nope\.toml"):
        load_pipeline(missing, ENV)


def test_load_pipeline_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(to_toml(good()), encoding="utf-8")
    assert load_pipeline(path, ENV) == parse(good())


# --- defaults and derived values --------------------------------------------------------------


def test_the_good_config_parses() -> None:
    config = parse(good())
    app, env = config.environment("shop", "production")
    assert app.source.url == "/x/sources/shop"
    assert env.policy.timeouts == PhaseTimeouts(stage=600, migrate=900)


def test_optional_keys_take_their_defaults() -> None:
    doc = good()
    for key in ("deploy_root", "keep_releases", "commands"):
        del shop(doc)[key]
    env = shop(doc)["environments"]["staging"]
    del env["batch_size"]
    app, staging = parse(doc).environment("shop", "staging")
    assert app.deploy_root == "/srv/roadie"
    assert app.keep_releases == 5
    assert app.commands == dict.fromkeys(
        ("build", "migrate", "post_migrate", "health", "restart"), ""
    )
    assert staging.policy.batch_size == BatchSize(1)
    assert staging.policy.migration_host == "first"
    assert staging.trigger == "push"


def test_empty_migrate_commands_turn_migration_steps_off() -> None:
    doc = good()
    shop(doc)["commands"]["migrate"] = ""
    del shop(doc)["commands"]["post_migrate"]
    _, env = parse(doc).environment("shop", "production")
    assert env.policy.run_migrations is False
    assert env.policy.run_post_migrations is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(3, BatchSize(3)), ("3", BatchSize(3)), ("25%", BatchSize(25, percent=True))],
)
def test_batch_size_is_a_count_or_a_percentage(raw: Any, expected: BatchSize) -> None:
    doc = good()
    prod(doc)["batch_size"] = raw
    assert parse(doc).environment("shop", "production")[1].policy.batch_size == expected


@pytest.mark.parametrize("keep", [2, 99])
def test_keep_releases_bounds_are_inclusive(keep: int) -> None:
    doc = good()
    shop(doc)["keep_releases"] = keep
    assert parse(doc).app("shop").keep_releases == keep


@pytest.mark.parametrize("seconds", [1, 86400])
def test_timeout_bounds_are_inclusive(seconds: int) -> None:
    doc = good()
    prod(doc)["timeouts"] = {"verify": seconds}
    env = parse(doc).environment("shop", "production")[1]
    assert env.policy.timeouts.verify == seconds


@pytest.mark.parametrize("trigger", ["push", "ci", "manual"])
def test_each_trigger_is_accepted(trigger: str) -> None:
    doc = good()
    prod(doc)["trigger"] = trigger
    assert parse(doc).environment("shop", "production")[1].trigger == trigger


@pytest.mark.parametrize("choice", ["first", "web-3", "i-0abc", "anything at all ?!"])
def test_migration_host_is_any_string_at_load(choice: str) -> None:
    # Whether it names a host of the fleet is only known when planning.
    doc = good()
    prod(doc)["migration_host"] = choice
    assert parse(doc).environment("shop", "production")[1].policy.migration_host == choice


@pytest.mark.parametrize("url", ["git@github.com:roadie-demo/shop.git", "s3://bucket/prefix"])
def test_plain_source_urls_are_accepted(url: str) -> None:
    doc = good()
    shop(doc)["source"]["url"] = url
    assert parse(doc).app("shop").source.url == url


# --- ${VAR} expansion in source.url -----------------------------------------------------------


def test_source_url_expands_every_variable() -> None:
    doc = good()
    shop(doc)["source"]["url"] = "${HOST_A}/${DIR_2}/shop"
    config = parse(doc, {"HOST_A": "/srv", "DIR_2": "git"})
    assert config.app("shop").source.url == "/srv/git/shop"


def test_source_url_with_an_unset_variable_names_it() -> None:
    doc = good()
    shop(doc)["source"]["url"] = "${ROADIE_STATE_DIR}/${MISSING_VAR}/shop"
    with pytest.raises(
        ConfigError, match=r"^apps\.shop\.source\.url: environment variable MISSING_VAR is not set"
    ):
        parse(doc)


def test_source_url_expansion_is_checked_after_expanding() -> None:
    doc = good()
    with pytest.raises(ConfigError, match=r"^apps\.shop\.source\.url: '/has space/sources/shop'"):
        parse(doc, {"ROADIE_STATE_DIR": "/has space"})


def test_source_url_reads_os_environ_when_no_mapping_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROADIE_STATE_DIR", "/from-os")
    config = parse_pipeline(to_toml(good()))
    assert config.app("shop").source.url == "/from-os/sources/shop"


def test_variables_are_only_expanded_in_source_url() -> None:
    doc = good()
    shop(doc)["deploy_root"] = "${ROADIE_STATE_DIR}/hosts"
    with pytest.raises(ConfigError, match=r"^apps\.shop\.deploy_root: "):
        parse(doc)


# --- lookups ----------------------------------------------------------------------------------


def test_environment_lookup_of_an_unknown_app_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="unknown app 'nope'"):
        parse(good()).environment("nope", "production")


def test_environment_lookup_of_an_unknown_environment_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="app 'shop' has no environment 'qa'"):
        parse(good()).environment("shop", "qa")


# --- validation: one bad value at a time, each error names its dotted key --------------------


def _set(path: str, value: Any):
    """A change that sets ``a.b.c`` (relative to the document root) to ``value``."""

    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[part]
        node[last] = value

    return change


def _del(path: str):
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[part]
        del node[last]

    return change


def _rename(path: str, new: str):
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[part]
        node[new] = node.pop(last)

    return change


A = "apps.shop"
P = "apps.shop.environments.production"
UNKNOWN_KEYS = [
    ("top level", _set("colour", "red"), r"^colour: unknown key"),
    ("app", _set(f"{A}.colour", "red"), rf"{SHOP}colour: unknown key"),
    ("source", _set(f"{A}.source.branch", "main"), rf"{SHOP}source\.branch: unknown key"),
    ("commands", _set(f"{A}.commands.deploy", "bin/x"), rf"{SHOP}commands\.deploy: unknown key"),
    ("environment", _set(f"{P}.colour", "red"), rf"{PROD}colour: unknown key"),
    ("hosts", _set(f"{P}.hosts.filters", "x"), rf"{PROD}hosts\.filters: unknown key"),
    ("timeouts", _set(f"{P}.timeouts.deploy", 5), rf"{PROD}timeouts\.deploy: unknown key"),
]
MISSING = [
    ("apps", _del("apps"), r"^apps: required table is missing"),
    ("repository", _del(f"{A}.repository"), rf"{SHOP}repository: required key is missing"),
    ("source", _del(f"{A}.source"), rf"{SHOP}source: required table is missing"),
    ("source.kind", _del(f"{A}.source.kind"), rf"{SHOP}source\.kind: required key is missing"),
    ("source.url", _del(f"{A}.source.url"), rf"{SHOP}source\.url: required key is missing"),
    ("environments", _del(f"{A}.environments"), rf"{SHOP}environments: required table"),
    ("branch", _del(f"{P}.branch"), rf"{PROD}branch: required key is missing"),
    ("hosts", _del(f"{P}.hosts"), rf"{PROD}hosts: required table is missing"),
    ("hosts.tags", _del(f"{P}.hosts.tags"), rf"{PROD}hosts\.tags: required key is missing"),
    ("no apps", _set("apps", {}), r"^apps: at least one app is required"),
    ("no envs", _set(f"{A}.environments", {}), rf"{SHOP}environments: at least one environment"),
    ("no tags", _set(f"{P}.hosts.tags", {}), rf"{PROD}hosts\.tags: at least one tag"),
]
WRONG_TYPES = [
    ("batch bool", _set(f"{P}.batch_size", True), rf"{PROD}batch_size: must be int or str"),
    ("batch float", _set(f"{P}.batch_size", 1.5), rf"{PROD}batch_size: must be int or str"),
    ("tags str", _set(f"{P}.tags", "v*"), rf"{PROD}tags: must be list"),
    ("host tags list", _set(f"{P}.hosts.tags", ["App"]), rf"{PROD}hosts\.tags: must be dict"),
    ("hosts str", _set(f"{P}.hosts", "web"), rf"{PROD}hosts: must be dict"),
    ("timeouts str", _set(f"{P}.timeouts.stage", "600"), rf"{PROD}timeouts\.stage: must be int"),
    ("timeout bool", _set(f"{P}.timeouts.stage", True), rf"{PROD}timeouts\.stage: must be int"),
    ("keep str", _set(f"{A}.keep_releases", "5"), rf"{SHOP}keep_releases: must be int"),
    ("keep bool", _set(f"{A}.keep_releases", True), rf"{SHOP}keep_releases: must be int"),
    ("command int", _set(f"{A}.commands.build", 1), rf"{SHOP}commands\.build: must be str"),
    ("repository list", _set(f"{A}.repository", ["a/b"]), rf"{SHOP}repository: must be str"),
    ("branch int", _set(f"{P}.branch", 1), rf"{PROD}branch: must be str"),
    ("trigger bool", _set(f"{P}.trigger", True), rf"{PROD}trigger: must be str"),
    ("app not table", _set(A, "shop"), rf"{SHOP[:-2]}: must be dict"),
    ("env not table", _set(P, 1), rf"{PROD[:-2]}: must be dict"),
    ("source str", _set(f"{A}.source", "git"), rf"{SHOP}source: must be dict"),
]
BAD_VALUES = [
    ("batch 0 str", _set(f"{P}.batch_size", "0"), rf"{PROD}batch_size: batch size 0 is out of"),
    ("batch 0 int", _set(f"{P}.batch_size", 0), rf"{PROD}batch_size: batch size 0 is out of"),
    ("batch negative", _set(f"{P}.batch_size", -2), rf"{PROD}batch_size: batch size -2 is out"),
    ("batch 150%", _set(f"{P}.batch_size", "150%"), rf"{PROD}batch_size: batch size 150% is out"),
    ("batch 0%", _set(f"{P}.batch_size", "0%"), rf"{PROD}batch_size: batch size 0% is out"),
    ("batch abc", _set(f"{P}.batch_size", "abc"), rf"{PROD}batch_size: .*'abc'"),
    ("batch 2.5%", _set(f"{P}.batch_size", "2.5%"), rf"{PROD}batch_size: .*'2\.5%'"),
    ("timeout 0", _set(f"{P}.timeouts.stage", 0), rf"{PROD}timeouts\.stage: must be 1\.\.86400"),
    ("timeout big", _set(f"{P}.timeouts.verify", 172801), rf"{PROD}timeouts\.verify: must be"),
    ("timeout neg", _set(f"{P}.timeouts.migrate", -1), rf"{PROD}timeouts\.migrate: must be"),
    ("trigger", _set(f"{P}.trigger", "sometimes"), rf"{PROD}trigger: must be one of push, ci"),
    ("source kind", _set(f"{A}.source.kind", "svn"), rf"{SHOP}source\.kind: must be one of git"),
    ("keep 1", _set(f"{A}.keep_releases", 1), rf"{SHOP}keep_releases: must be 2\.\.99"),
    ("keep 100", _set(f"{A}.keep_releases", 100), rf"{SHOP}keep_releases: must be 2\.\.99"),
    ("branch dash", _set(f"{P}.branch", "-x"), rf"{PROD}branch: '-x' does not match"),
    ("branch dots", _set(f"{P}.branch", "a..b"), rf"{PROD}branch: 'a\.\.b' does not match"),
    ("branch space", _set(f"{P}.branch", "a b"), rf"{PROD}branch: 'a b' does not match"),
    ("branch empty", _set(f"{P}.branch", ""), rf"{PROD}branch: '' does not match"),
    ("tag pattern", _set(f"{P}.tags", ["v*", "-rc"]), rf"{PROD}tags: '-rc' is not a tag pattern"),
    ("tag pattern int", _set(f"{P}.tags", [1]), rf"{PROD}tags: 1 is not a tag pattern"),
    ("tag value", _set(f"{P}.hosts.tags.App", "a;b"), rf"{PROD}hosts\.tags\.App: must be a plain"),
    ("tag value int", _set(f"{P}.hosts.tags.App", 1), rf"{PROD}hosts\.tags\.App: must be a plain"),
    ("tag key", _set(f"{P}.hosts.tags", {"A$": "x"}), rf"{PROD}hosts\.tags\.A\$: must be a plain"),
    ("repository", _set(f"{A}.repository", "shop"), rf"{SHOP}repository: 'shop' does not match"),
    ("deploy_root", _set(f"{A}.deploy_root", "srv"), rf"{SHOP}deploy_root: 'srv' does not match"),
    ("app upper", _rename(A, "Shop"), r"^apps\.Shop: app name must match"),
    ("app space", _rename(A, "my shop"), r"^apps\.my shop: app name must match"),
    ("app digit", _rename(A, "1shop"), r"^apps\.1shop: app name must match"),
    ("env upper", _rename(P, "Prod"), r"^apps\.shop\.environments\.Prod: environment name must"),
    ("env space", _rename(P, "pro d"), r"^apps\.shop\.environments\.pro d: environment name"),
]
SHELL_COMMANDS = [
    "bin/build; rm -rf /",
    "bin/build && rm -rf /",
    "bin/build | tee x",
    "bin/build > /etc/passwd",
    "echo $(id)",
    "echo ${HOME}",
    "echo `id`",
    "echo 'quoted'",
    'echo "quoted"',
    "bin/build\nrm -rf /",
    "bin/build\n",
    "bin/build\trm",
    "bin/build &",
    "x" * 257,
]
BAD_URLS = [
    "/srv/my repo",
    "/srv/'repo'",
    '/srv/"repo"',
    "/srv/repo;rm",
    "/srv/$(id)",
    "/srv/`id`",
    "/srv/repo\n",
    "",
    "/" + "x" * 512,
]


@pytest.mark.parametrize(
    ("change", "message"),
    [pytest.param(c, m, id=i) for i, c, m in UNKNOWN_KEYS + MISSING + WRONG_TYPES + BAD_VALUES],
)
def test_each_problem_is_reported_with_its_dotted_key(change, message: str) -> None:
    doc = good()
    change(doc)
    with pytest.raises(ConfigError, match=message):
        parse(doc)


@pytest.mark.parametrize("name", ["build", "migrate", "post_migrate", "health", "restart"])
@pytest.mark.parametrize("command", SHELL_COMMANDS, ids=repr)
def test_commands_with_shell_syntax_are_rejected(name: str, command: str) -> None:
    doc = good()
    shop(doc)["commands"][name] = command
    with pytest.raises(ConfigError, match=rf"{SHOP}commands\.{name}: .* does not match"):
        parse(doc)


@pytest.mark.parametrize("url", BAD_URLS, ids=repr)
def test_source_urls_hosts_would_not_take_are_rejected(url: str) -> None:
    doc = good()
    shop(doc)["source"]["url"] = url
    with pytest.raises(ConfigError, match=rf"{SHOP}source\.url: "):
        parse(doc)


def test_invalid_toml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^pipeline config is not valid TOML: "):
        parse_pipeline("[apps.shop\nrepository = ", ENV)


def test_a_duplicate_key_is_invalid_toml() -> None:
    text = to_toml(good()) + "apps = {}\n"
    with pytest.raises(ConfigError, match=r"^pipeline config is not valid TOML"):
        parse_pipeline(text, ENV)


def test_config_error_is_not_raised_as_another_error_type() -> None:
    # A table where a list belongs must not escape as AttributeError/TypeError.
    doc = good()
    prod(doc)["tags"] = {"v": 1}
    with pytest.raises(ConfigError, match=rf"{PROD}tags: must be list"):
        parse(doc)


# --- what the config accepts must be what the SSM document accepts ----------------------------


def _document_pattern(name: str) -> re.Pattern[str]:
    (parameter,) = (p for p in PARAMETERS if p.name == name)
    return re.compile(parameter.pattern)


def test_every_accepted_timeout_is_one_the_ssm_document_takes() -> None:
    doc = good()
    prod(doc)["timeouts"] = {"migrate": 86400}
    env = parse(doc).environment("shop", "production")[1]
    assert _document_pattern("executionTimeout").match(str(env.policy.timeouts.migrate))


@pytest.mark.parametrize("url", ["-uhost/evil", "@host:repo", "+x"])
def test_source_url_must_start_like_the_ssm_document_wants(url: str) -> None:
    doc = good()
    shop(doc)["source"]["url"] = url
    assert not _document_pattern("sourceUrl").match(url)
    with pytest.raises(ConfigError, match=rf"{SHOP}source\.url: "):
        parse(doc)


def test_accepted_commands_and_roots_match_the_ssm_document() -> None:
    app = parse(good()).app("shop")
    for command in app.commands.values():
        assert _document_pattern("buildCommand").match(command)
    assert _document_pattern("deployRoot").match(app.deploy_root)
    assert _document_pattern("keepReleases").match(str(app.keep_releases))
    assert _document_pattern("sourceUrl").match(app.source.url)


# --- Settings ---------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    s = Settings.from_env({})
    assert s.region == "us-east-1"
    assert s.deploys_table == "roadie-deploys"
    assert s.hosts_table == "roadie-deploy-hosts"
    assert s.environments_table == "roadie-environments"
    assert s.idempotency_table == "roadie-idempotency"
    assert s.state_machine_arn == ""
    assert s.ssm_document == "Roadie-Deploy"
    assert s.api_tokens_param == "/roadie/api-tokens"
    assert s.github_secret_param == "/roadie/webhooks/github"
    assert s.gitlab_secret_param == "/roadie/webhooks/gitlab"
    assert s.bitbucket_secret_param == "/roadie/webhooks/bitbucket"
    assert s.pipeline_config == BUNDLED_CONFIG
    assert (s.poll_seconds, s.parameters_max_age, s.lease_seconds) == (5, 60, 3600)


def test_settings_prefix_renames_every_derived_resource() -> None:
    s = Settings.from_env({"ROADIE_RESOURCE_PREFIX": "rd-dev"})
    assert s.deploys_table == "rd-dev-deploys"
    assert s.hosts_table == "rd-dev-deploy-hosts"
    assert s.environments_table == "rd-dev-environments"
    assert s.idempotency_table == "rd-dev-idempotency"
    assert s.api_tokens_param == "/rd-dev/api-tokens"
    assert s.github_secret_param == "/rd-dev/webhooks/github"
    assert s.gitlab_secret_param == "/rd-dev/webhooks/gitlab"
    assert s.bitbucket_secret_param == "/rd-dev/webhooks/bitbucket"


def test_settings_explicit_values_win() -> None:
    environ = {
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "us-west-2",
        "ROADIE_RESOURCE_PREFIX": "ignored",
        "ROADIE_DEPLOYS_TABLE": "d",
        "ROADIE_HOSTS_TABLE": "h",
        "ROADIE_ENVIRONMENTS_TABLE": "e",
        "ROADIE_IDEMPOTENCY_TABLE": "i",
        "ROADIE_STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:1:stateMachine:r",
        "ROADIE_SSM_DOCUMENT": "Doc",
        "ROADIE_API_TOKENS_PARAM": "/t",
        "ROADIE_GITHUB_SECRET_PARAM": "/gh",
        "ROADIE_GITLAB_SECRET_PARAM": "/gl",
        "ROADIE_BITBUCKET_SECRET_PARAM": "/bb",
        "ROADIE_CONFIG": "/etc/roadie.toml",
        "ROADIE_POLL_SECONDS": "2",
        "ROADIE_PARAMETERS_MAX_AGE": "0",
        "ROADIE_LEASE_SECONDS": "7200",
    }
    s = Settings.from_env(environ)
    assert s.region == "eu-west-1"
    assert (s.deploys_table, s.hosts_table, s.environments_table) == ("d", "h", "e")
    assert s.idempotency_table == "i"
    assert s.state_machine_arn == "arn:aws:states:eu-west-1:1:stateMachine:r"
    assert s.ssm_document == "Doc"
    assert (s.api_tokens_param, s.github_secret_param) == ("/t", "/gh")
    assert (s.gitlab_secret_param, s.bitbucket_secret_param) == ("/gl", "/bb")
    assert s.pipeline_config == Path("/etc/roadie.toml")
    assert (s.poll_seconds, s.parameters_max_age, s.lease_seconds) == (2, 0, 7200)


def test_settings_region_falls_back_to_the_default_region_then_us_east_1() -> None:
    assert Settings.from_env({"AWS_DEFAULT_REGION": "ap-south-1"}).region == "ap-south-1"
    assert Settings.from_env({"AWS_REGION": "", "AWS_DEFAULT_REGION": ""}).region == "us-east-1"


def test_settings_empty_config_path_means_the_bundled_config() -> None:
    assert Settings.from_env({"ROADIE_CONFIG": ""}).pipeline_config == BUNDLED_CONFIG


def test_settings_reads_os_environ_when_no_mapping_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROADIE_DEPLOYS_TABLE", "from-os")
    assert Settings.from_env().deploys_table == "from-os"


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.region = "x"  # type: ignore[misc]


# --- the scm table: how refs resolve to SHAs in AWS --------------------------------------------

SCM = r"^apps\.shop\.scm\."
PASTED_TOKEN = "ghp_0123456789abcdefABCDEF0123456789abcd"


def with_scm(**scm: Any) -> dict[str, Any]:
    doc = good()
    shop(doc)["scm"] = scm
    return doc


def test_an_app_without_an_scm_table_has_none() -> None:
    assert parse(good()).app("shop").scm is None


@pytest.mark.parametrize(
    ("provider", "api_url"),
    [
        ("github", "https://api.github.com"),
        ("gitlab", "https://gitlab.com/api/v4"),
        ("bitbucket", "https://api.bitbucket.org/2.0"),
    ],
)
def test_each_provider_defaults_to_its_public_api(provider: str, api_url: str) -> None:
    scm = parse(with_scm(provider=provider)).app("shop").scm
    assert scm == ScmConfig(provider=provider, api_url=api_url, token=None)


def test_an_enterprise_api_url_keeps_its_path_without_a_trailing_slash() -> None:
    doc = with_scm(provider="github", api_url="https://ghe.example.com:8443/api/v3/")
    assert parse(doc).app("shop").scm == ScmConfig("github", "https://ghe.example.com:8443/api/v3")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8123", "http://localhost/api/v4"])
def test_plain_http_api_urls_are_accepted_only_on_loopback(url: str) -> None:
    scm = parse(with_scm(provider="gitlab", api_url=url)).app("shop").scm
    assert scm is not None and scm.api_url == url.rstrip("/")


@pytest.mark.parametrize(
    "token",
    [
        "/roadie/prod/scm/github",
        "/x",
        "secretsmanager:roadie/scm/github",
        "secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:roadie/gh-AbCdEf",
    ],
)
def test_a_token_is_a_parameter_name_or_a_secret_id(token: str) -> None:
    scm = parse(with_scm(provider="github", token=token)).app("shop").scm
    assert scm is not None and scm.token == token


SCM_PROBLEMS = [
    ("not a table", lambda d: shop(d).update(scm="github"), r"^apps\.shop\.scm: must be dict"),
    ("no provider", lambda d: shop(d).update(scm={}), rf"{SCM}provider: required key is missing"),
    ("provider", _set(f"{A}.scm.provider", "gitea"), rf"{SCM}provider: must be one of github"),
    ("unknown key", _set(f"{A}.scm.url", "https://x"), rf"{SCM}url: unknown key"),
    ("api_url int", _set(f"{A}.scm.api_url", 1), rf"{SCM}api_url: must be str"),
    ("http", _set(f"{A}.scm.api_url", "http://api.github.com"), rf"{SCM}api_url: must be https"),
    ("ftp", _set(f"{A}.scm.api_url", "ftp://api.github.com"), rf"{SCM}api_url: must be an https"),
    ("no host", _set(f"{A}.scm.api_url", "https:///api"), rf"{SCM}api_url: must be an https"),
    ("relative", _set(f"{A}.scm.api_url", "api.github.com"), rf"{SCM}api_url: must be an https"),
    ("port", _set(f"{A}.scm.api_url", "https://h:99999"), rf"{SCM}api_url: Port out of range"),
    ("space", _set(f"{A}.scm.api_url", "https://h/a b"), rf"{SCM}api_url: must not contain spa"),
    ("userinfo", _set(f"{A}.scm.api_url", "https://u:p@h"), rf"{SCM}api_url: must not contain cr"),
    ("user", _set(f"{A}.scm.api_url", "https://u@h"), rf"{SCM}api_url: must not contain cred"),
    ("query", _set(f"{A}.scm.api_url", "https://h/api?x=1"), rf"{SCM}api_url: must not have a q"),
    ("empty query", _set(f"{A}.scm.api_url", "https://h/?"), rf"{SCM}api_url: must not have a q"),
    ("fragment", _set(f"{A}.scm.api_url", "https://h/#x"), rf"{SCM}api_url: must not have a q"),
    ("token int", _set(f"{A}.scm.token", 1), rf"{SCM}token: must be str"),
    ("token relative", _set(f"{A}.scm.token", "roadie/x"), rf"{SCM}token: must be an SSM param"),
    ("token dir", _set(f"{A}.scm.token", "/roadie/"), rf"{SCM}token: must be an SSM parameter"),
    ("token //", _set(f"{A}.scm.token", "/roadie//x"), rf"{SCM}token: must be an SSM parameter"),
    ("token chars", _set(f"{A}.scm.token", "/roadie/$x"), rf"{SCM}token: must be an SSM param"),
    ("token long", _set(f"{A}.scm.token", "/" + "x" * 1011), rf"{SCM}token: must be an SSM"),
    ("token deep", _set(f"{A}.scm.token", "/a" * 16), rf"{SCM}token: must be an SSM parameter"),
    ("secret empty", _set(f"{A}.scm.token", "secretsmanager:"), rf"{SCM}token: secretsmanager:"),
    ("secret chars", _set(f"{A}.scm.token", "secretsmanager:a b"), rf"{SCM}token: secretsman"),
    ("secret arn", _set(f"{A}.scm.token", "secretsmanager:arn:aws:s3:::b"), rf"{SCM}token: sec"),
    ("3-part github", _set(f"{A}.repository", "a/b/c"), rf"{SHOP}repository: github names a rep"),
]


@pytest.mark.parametrize(
    ("change", "message"), [pytest.param(c, m, id=i) for i, c, m in SCM_PROBLEMS]
)
def test_each_scm_problem_is_reported_with_its_dotted_key(change, message: str) -> None:
    doc = with_scm(provider="github")
    change(doc)
    with pytest.raises(ConfigError, match=message):
        parse(doc)


def test_gitlab_takes_a_repository_in_a_subgroup() -> None:
    doc = with_scm(provider="gitlab")
    shop(doc)["repository"] = "group/sub/shop"
    assert parse(doc).app("shop").repository == "group/sub/shop"


@pytest.mark.parametrize("token", [PASTED_TOKEN, f"secretsmanager:{PASTED_TOKEN} "])
def test_a_pasted_token_is_refused_without_being_echoed(token: str) -> None:
    with pytest.raises(ConfigError, match=rf"{SCM}token: ") as raised:
        parse(with_scm(provider="github", token=token))
    assert PASTED_TOKEN not in str(raised.value)


# --- check_deployable: what a config bound for AWS must satisfy --------------------------------


def deployable(source: dict[str, str], **scm: Any) -> dict[str, Any]:
    doc = with_scm(**scm) if scm else good()
    shop(doc)["source"] = source
    return doc


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/roadie-demo/shop.git",
        "https://gitlab.example.com:8443/group/sub/shop",
        "ssh://git@github.com/roadie-demo/shop.git",
        "ssh://git@ghe.example.com:2222/roadie-demo/shop.git",
        "git@github.com:roadie-demo/shop.git",
        "git@bitbucket.org:roadie-demo/shop.git",
    ],
)
def test_a_remote_git_source_with_an_scm_table_is_deployable(url: str) -> None:
    check_deployable(parse(deployable({"kind": "git", "url": url}, provider="github")))


@pytest.mark.parametrize("url", ["s3://roadie-artifacts", "s3://roadie.artifacts-1/ci/builds"])
def test_an_s3_source_is_deployable_without_an_scm_table(url: str) -> None:
    check_deployable(parse(deployable({"kind": "s3", "url": url})))


def test_the_bundled_demo_config_is_not_deployable_to_aws() -> None:
    with pytest.raises(ConfigError, match=r"^apps\.shop\.source\.url: a git source in AWS must"):
        check_deployable(load_pipeline(BUNDLED_CONFIG, {"ROADIE_STATE_DIR": "/x"}))


def test_a_remote_git_source_without_an_scm_table_is_not_deployable() -> None:
    doc = deployable({"kind": "git", "url": "git@github.com:roadie-demo/shop.git"})
    with pytest.raises(ConfigError, match=r"^apps\.shop\.scm: required for a git source"):
        check_deployable(parse(doc))


@pytest.mark.parametrize(
    "url",
    [
        "/srv/git/shop",
        "./shop",
        "~/shop.git",
        "file:///srv/git/shop",
        "http://github.com/roadie-demo/shop.git",
        "https://github.com",
        "https://github.com/",
        "ssh://github.com",
        "git@github.com:",
        "git@github.com:/",
        "github.com:roadie-demo/shop.git",
    ],
)
def test_a_git_source_that_is_not_a_remote_url_is_not_deployable(url: str) -> None:
    doc = deployable({"kind": "git", "url": url}, provider="github")
    with pytest.raises(ConfigError, match=r"^apps\.shop\.source\.url: a git source in AWS must"):
        check_deployable(parse(doc))


@pytest.mark.parametrize(
    "url",
    [
        "https://deploy:s3cr3t-pass@github.com/roadie-demo/shop.git",
        "https://s3cr3t-pass@github.com/roadie-demo/shop.git",
        "ssh://git:s3cr3t-pass@github.com/roadie-demo/shop.git",
    ],
)
def test_a_git_url_with_credentials_is_refused_without_echoing_them(url: str) -> None:
    doc = deployable({"kind": "git", "url": url}, provider="github")
    with pytest.raises(ConfigError, match=r"^apps\.shop\.source\.url: .*credentials") as raised:
        check_deployable(parse(doc))
    assert "s3cr3t-pass" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "s3://",
        "s3://b",
        "s3://Roadie-Artifacts",
        "s3://roadie-artifacts/",
        "s3://roadie-artifacts//ci",
        "s3://roadie-artifacts/ci/",
        "s3:/roadie-artifacts",
        "/srv/artifacts",
        "https://roadie-artifacts.s3.amazonaws.com/ci",
    ],
)
def test_an_s3_source_that_is_not_bucket_and_prefix_is_not_deployable(url: str) -> None:
    doc = deployable({"kind": "s3", "url": url})
    with pytest.raises(ConfigError, match=r"^apps\.shop\.source\.url: an s3 source must be"):
        check_deployable(parse(doc))


def test_check_deployable_names_the_app_at_fault() -> None:
    doc = good()
    doc["apps"]["zoo"] = copy.deepcopy(shop(doc))
    shop(doc)["source"] = {"kind": "s3", "url": "s3://roadie-artifacts"}
    with pytest.raises(ConfigError, match=r"^apps\.zoo\.source\.url: "):
        check_deployable(parse(doc))
