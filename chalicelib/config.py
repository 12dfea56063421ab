"""The pipeline config (TOML) loaded and validated; ``Settings`` (re-exported) live in settings.py.

The pipeline config is code: apps, their environments, how hosts are found (EC2 tags), batch
size, the migration host and the host commands per phase. Every problem is reported as a
``ConfigError`` whose message starts with the dotted key it is about.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .domain.errors import ConfigError, PlanningError
from .domain.model import NAME_RE, REF_RE
from .domain.pipeline import (
    AppConfig,
    EnvironmentConfig,
    NotifyConfig,
    PipelineConfig,
    ScmConfig,
    Source,
)
from .domain.rollout import BatchSize, PhaseTimeouts, RolloutPolicy
from .settings import BUNDLED_CONFIG, Settings

# the config's types live in the domain, Settings in settings.py: importable from here too
__all__ = [
    "BUNDLED_CONFIG",
    "AppConfig",
    "EnvironmentConfig",
    "PipelineConfig",
    "ScmConfig",
    "Settings",
    "Source",
    "check_deployable",
    "load_pipeline",
    "parse_pipeline",
]

# What the SSM document accepts for a host command (its allowedPattern): no shell syntax.
COMMAND_RE = re.compile(r"^[A-Za-z0-9 _./=:,+-]{0,256}\Z")
SOURCE_URL_RE = re.compile(r"^[A-Za-z0-9/~.][A-Za-z0-9@:/._+~-]{0,511}\Z")  # = the document's
DEPLOY_ROOT_RE = re.compile(r"^/[A-Za-z0-9._/-]{0,255}\Z")
TAG_RE = re.compile(r"^[A-Za-z0-9 _.:/=+@-]{1,128}\Z")
BRANCH_RE = REF_RE  # a branch in the config is a ref the API would accept
ENV_REF_RE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
TRIGGERS = ("push", "ci", "manual")
MAX_TIMEOUT = 86400  # a day; the SSM document's executionTimeout takes at most 99999
SOURCE_KINDS = ("git", "s3")
COMMAND_NAMES = ("build", "migrate", "post_migrate", "health", "restart")
# How refs resolve to SHAs in AWS, where there is no git binary: each SCM's REST API.
SCM_API_URLS = {
    "github": "https://api.github.com",
    "gitlab": "https://gitlab.com/api/v4",
    "bitbucket": "https://api.bitbucket.org/2.0",
}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")  # the only hosts a plain http:// api_url may name
SECRETS_MANAGER_PREFIX = "secretsmanager:"
# An SSM parameter name: "/" then at most 15 levels of [A-Za-z0-9_.-], 1011 characters in all.
SSM_PARAMETER_RE = re.compile(r"^(?=.{2,1011}\Z)(/[A-Za-z0-9_.-]+){1,15}\Z")
SECRET_ID_RE = re.compile(
    r"^(?:[A-Za-z0-9/_+=.@-]{1,512}"
    r"|arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]{1,512})\Z"
)
S3_URL_RE = re.compile(
    r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>[A-Za-z0-9_.+~-]+"
    r"(?:/[A-Za-z0-9_.+~-]+)*))?\Z"
)
SCP_URL_RE = re.compile(r"^[A-Za-z0-9_.-]+@[A-Za-z0-9.-]+:(?!/*\Z)[A-Za-z0-9_./~+-]+\Z")


class _Reader:
    """Walks a TOML table, remembering the dotted path for error messages."""

    def __init__(self, table: Any, path: str, environ: Mapping[str, str]) -> None:
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: must be a table")
        self.table: dict[str, Any] = table
        self.path = path
        self.environ = environ
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., /) -> Any:
        self.used.add(name)
        if name not in self.table:
            if default is ...:
                raise ConfigError(f"{self.key(name)}: required key is missing")
            return default
        value = self.table[name]
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            expected = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise ConfigError(f"{self.key(name)}: must be {expected}, got {value!r}")
        return value

    def text(self, name: str, pattern: re.Pattern[str] | None = None, default: Any = ...) -> str:
        value = self.get(name, str, default)
        if value is not None and pattern is not None and not pattern.match(value):
            raise ConfigError(f"{self.key(name)}: {value!r} does not match {pattern.pattern}")
        return value  # type: ignore[no-any-return]

    def child(self, name: str, default: Any = ...) -> _Reader:
        value = self.get(name, dict, {} if default is ... else default)
        if default is ... and name not in self.table:
            raise ConfigError(f"{self.key(name)}: required table is missing")
        return _Reader(value, self.key(name), self.environ)

    def expand(self, name: str, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            var = match.group(1)
            if var not in self.environ:
                raise ConfigError(f"{self.key(name)}: environment variable {var} is not set")
            return self.environ[var]

        return ENV_REF_RE.sub(replace, value)

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise ConfigError(f"{self.key(unknown[0])}: unknown key")


def _bake(reader: _Reader) -> int:
    value = int(reader.get("bake_seconds", int, 0))
    if not 0 <= value <= 3600:
        raise ConfigError(f"{reader.key('bake_seconds')}: must be 0..3600 seconds")
    return value


def _environment(name: str, reader: _Reader, commands: dict[str, str]) -> EnvironmentConfig:
    if not NAME_RE.match(name):
        raise ConfigError(f"{reader.path}: environment name must match {NAME_RE.pattern}")
    branch = reader.text("branch", BRANCH_RE)
    hosts = reader.child("hosts")
    tags = hosts.get("tags", dict)
    if not tags:
        raise ConfigError(f"{hosts.key('tags')}: at least one tag is required")
    for tag_key, tag_value in tags.items():
        if (
            not isinstance(tag_value, str)
            or not TAG_RE.match(tag_value)
            or not TAG_RE.match(tag_key)
        ):
            raise ConfigError(f"{hosts.key('tags')}.{tag_key}: must be a plain tag value")
    hosts.done()
    try:
        batch = BatchSize.parse(reader.get("batch_size", (int, str), 1))
    except PlanningError as exc:
        raise ConfigError(f"{reader.key('batch_size')}: {exc}") from exc
    timeouts_reader = reader.child("timeouts", {})
    timeout_values: dict[str, int] = {}
    for phase in PhaseTimeouts.__dataclass_fields__:
        value = timeouts_reader.get(phase, int, None)
        if value is not None:
            if not 1 <= value <= MAX_TIMEOUT:
                raise ConfigError(f"{timeouts_reader.key(phase)}: must be 1..{MAX_TIMEOUT} seconds")
            timeout_values[phase] = value
    timeouts_reader.done()
    trigger = reader.text("trigger", None, "push")
    if trigger not in TRIGGERS:
        raise ConfigError(f"{reader.key('trigger')}: must be one of {', '.join(TRIGGERS)}")
    tag_patterns = reader.get("tags", list, [])
    for pattern in tag_patterns:
        if not isinstance(pattern, str) or not BRANCH_RE.match(pattern.replace("*", "x")):
            raise ConfigError(f"{reader.key('tags')}: {pattern!r} is not a tag pattern")
    policy = RolloutPolicy(
        batch_size=batch,
        migration_host=reader.text("migration_host", None, "first"),
        run_migrations=bool(commands["migrate"]),
        run_post_migrations=bool(commands["post_migrate"]),
        timeouts=PhaseTimeouts(**timeout_values),
        bake_seconds=_bake(reader),
    )
    reader.done()
    return EnvironmentConfig(
        name=name,
        branch=branch,
        host_tags=dict(tags),
        policy=policy,
        trigger=trigger,
        tag_patterns=tuple(tag_patterns),
    )


def _api_url(reader: _Reader, default: str) -> str:
    key = reader.key("api_url")
    url = reader.text("api_url", None, default)
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ConfigError(f"{key}: must not contain spaces or control characters")
    parts = urlsplit(url)
    try:
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from exc
    host = parts.hostname or ""
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ConfigError(f"{key}: must be https:// (http:// only for 127.0.0.1 or localhost)")
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(f"{key}: must be an https:// URL with a host")
    if "@" in parts.netloc:
        raise ConfigError(f"{key}: must not contain credentials (use token)")
    if "?" in url or "#" in url:
        raise ConfigError(f"{key}: must not have a query or a fragment")
    return url.rstrip("/")


def _token(reader: _Reader) -> str | None:
    token = reader.get("token", str, None)
    return None if token is None else _secret_reference(reader.key("token"), token)


def _secret_reference(key: str, token: str) -> str:
    # Never echo the value: a mistake here is most likely a pasted token.
    if token.startswith(SECRETS_MANAGER_PREFIX):
        if not SECRET_ID_RE.match(token.removeprefix(SECRETS_MANAGER_PREFIX)):
            raise ConfigError(f"{key}: secretsmanager: must be followed by a secret name or ARN")
        return token
    if not SSM_PARAMETER_RE.match(token):
        raise ConfigError(
            f"{key}: must be an SSM parameter name (/...) or secretsmanager:<secret id>, "
            "never the token itself"
        )
    return token


def _scm(reader: _Reader, repository: str) -> ScmConfig | None:
    if reader.get("scm", dict, None) is None:
        return None
    scm = reader.child("scm")
    provider = scm.text("provider")
    if provider not in SCM_API_URLS:
        raise ConfigError(f"{scm.key('provider')}: must be one of {', '.join(SCM_API_URLS)}")
    api_url = _api_url(scm, SCM_API_URLS[provider])
    token = _token(scm)
    scm.done()
    if provider in ("github", "bitbucket") and repository.count("/") != 1:
        raise ConfigError(f"{reader.key('repository')}: {provider} names a repository owner/name")
    return ScmConfig(provider=provider, api_url=api_url, token=token)


def _url(reader: _Reader, name: str, value: str) -> str:
    """An https:// link shown to people (http:// only on loopback), without spaces."""
    key = reader.key(name)
    parts = urlsplit(value)
    if any(c.isspace() or not c.isprintable() for c in value) or not parts.hostname:
        raise ConfigError(f"{key}: must be an https:// URL with a host, without spaces")
    if parts.scheme != "https" and not (
        parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    ):
        raise ConfigError(f"{key}: must be https:// (http:// only for 127.0.0.1 or localhost)")
    if "@" in parts.netloc:
        raise ConfigError(f"{key}: must not contain credentials")
    return value


def _notify(reader: _Reader, scm: ScmConfig | None, environments: Iterable[str]) -> NotifyConfig:
    if reader.get("notify", dict, None) is None:
        return NotifyConfig()
    notify = reader.child("notify")
    scm_status = notify.get("scm_status", bool, False)
    if scm_status and (scm is None or scm.token is None):
        raise ConfigError(
            f"{notify.key('scm_status')}: needs the app's scm table with a token "
            "(statuses are written with it)"
        )
    slack = notify.get("slack_webhook", str, None)
    if slack is not None:
        # the value names a secret; a pasted https://hooks.slack.com/... URL is refused unseen
        slack = _secret_reference(notify.key("slack_webhook"), slack.removeprefix("ssm:"))
    log_url = notify.get("log_url", str, "")
    if log_url:
        log_url = _url(notify, "log_url", log_url)
    urls_reader = notify.child("environment_urls", {})
    known = set(environments)
    urls = {}
    for env_name in list(urls_reader.table):
        if env_name not in known:
            raise ConfigError(f"{urls_reader.key(env_name)}: no such environment")
        urls[env_name] = _url(urls_reader, env_name, urls_reader.text(env_name))
    urls_reader.done()
    notify.done()
    return NotifyConfig(
        scm_status=scm_status, slack_webhook=slack, log_url=log_url, environment_urls=urls
    )


def _app(name: str, reader: _Reader) -> AppConfig:
    if not NAME_RE.match(name):
        raise ConfigError(f"{reader.path}: app name must match {NAME_RE.pattern}")
    repository = reader.text("repository", re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+\Z"))
    source_reader = reader.child("source")
    kind = source_reader.text("kind")
    if kind not in SOURCE_KINDS:
        raise ConfigError(f"{source_reader.key('kind')}: must be one of {', '.join(SOURCE_KINDS)}")
    url = source_reader.expand("url", source_reader.text("url"))
    if not SOURCE_URL_RE.match(url):
        raise ConfigError(f"{source_reader.key('url')}: {url!r} has characters hosts won't take")
    source_reader.done()
    scm = _scm(reader, repository)
    commands_reader = reader.child("commands", {})
    commands = {}
    for command in COMMAND_NAMES:
        value = commands_reader.text(command, COMMAND_RE, "")
        commands[command] = value
    commands_reader.done()
    keep = reader.get("keep_releases", int, 5)
    if not 2 <= keep <= 99:
        raise ConfigError(f"{reader.key('keep_releases')}: must be 2..99")
    envs_reader = reader.child("environments")
    environments = {
        env_name: _environment(env_name, envs_reader.child(env_name), commands)
        for env_name in list(envs_reader.table)
    }
    if not environments:
        raise ConfigError(f"{envs_reader.path}: at least one environment is required")
    envs_reader.done()
    deploy_root = reader.text("deploy_root", DEPLOY_ROOT_RE, "/srv/roadie")
    notify = _notify(reader, scm, environments)
    reader.done()
    return AppConfig(
        name=name,
        repository=repository,
        source=Source(kind, url),
        deploy_root=deploy_root,
        commands=commands,
        environments=environments,
        keep_releases=keep,
        scm=scm,
        notify=notify,
    )


def _git_url_problem(url: str) -> str | None:
    """Why ``url`` is not a remote git URL a host can fetch in AWS, or None if it is."""
    if SCP_URL_RE.match(url):  # git@host:owner/name.git
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("https", "ssh") or not parts.hostname:
        return f"must be a remote URL (https://, ssh:// or git@host:path), got {url!r}"
    if parts.password is not None or (parts.scheme == "https" and parts.username is not None):
        return "must not contain credentials (they would ship inside the artifact)"
    if parts.path.strip("/") == "" or parts.query or parts.fragment:
        return f"must name a repository path, without a query or fragment, got {url!r}"
    return None


def check_deployable(pipeline: PipelineConfig) -> None:
    """What a config bound for AWS must satisfy on top of ``parse_pipeline``'s checks; the
    packager calls it. Raises ``ConfigError`` naming the key.

    A ``git`` source is a remote URL (https://, ssh:// or git@host:path), never a local path,
    and needs an ``scm`` table (Lambda has no git binary to resolve refs with); an ``s3`` source
    is ``s3://bucket`` or ``s3://bucket/prefix``, the form the host script joins keys onto.
    """
    for name, app in pipeline.apps.items():
        key = f"apps.{name}"
        if app.source.kind == "git":
            problem = _git_url_problem(app.source.url)
            if problem:
                raise ConfigError(f"{key}.source.url: a git source in AWS {problem}")
            if app.scm is None:
                raise ConfigError(
                    f"{key}.scm: required for a git source in AWS (refs resolve through the "
                    "SCM's API; Lambda has no git binary)"
                )
        elif app.source.kind == "s3" and not S3_URL_RE.match(app.source.url):
            raise ConfigError(
                f"{key}.source.url: an s3 source must be s3://bucket or s3://bucket/prefix "
                f"(no trailing slash), got {app.source.url!r}"
            )


def parse_pipeline(text: str, environ: Mapping[str, str] | None = None) -> PipelineConfig:
    """Parse and validate pipeline TOML; raise ``ConfigError`` naming the bad key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"pipeline config is not valid TOML: {exc}") from exc
    root = _Reader(data, "", os.environ if environ is None else environ)
    apps_reader = root.child("apps")
    apps = {name: _app(name, apps_reader.child(name)) for name in list(apps_reader.table)}
    if not apps:
        raise ConfigError("apps: at least one app is required")
    root.done()
    return PipelineConfig(apps)


def load_pipeline(path: Path, environ: Mapping[str, str] | None = None) -> PipelineConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline config {path}: {exc}") from exc
    return parse_pipeline(text, environ)
