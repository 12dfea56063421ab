"""Domain errors: what can go wrong in Roadie's own rules, independent of HTTP or AWS."""

from __future__ import annotations


class RoadieError(Exception):
    """Base class of every error Roadie raises on purpose."""

    code = "error"


class ValidationError(RoadieError):
    """A request or a value breaks a rule (a malformed SHA, an unknown field)."""

    code = "invalid"


class InvalidCursorError(ValidationError):
    """A listing cursor this API did not return for this query (tampered, truncated, or made
    for other filters): the request is malformed, a 400."""

    code = "invalid_cursor"


class StorageRejectedError(ValidationError):
    """The datastore refused a write as malformed (DynamoDB's ``ValidationException``, also
    inside a cancelled transaction): not a lost race, so never retried. Request values are
    checked before they are stored, so reaching this names a value the checks missed."""

    code = "rejected_by_storage"


class NotFoundError(RoadieError):
    """A named thing (app, environment, deploy) does not exist."""

    code = "not_found"


class UnknownShaError(NotFoundError):
    """A SHA asked for by name is not a commit of the app's repository."""

    code = "unknown_sha"


class ConflictError(RoadieError):
    """The request is valid but the current state does not allow it."""

    code = "conflict"


class StaleStateError(ConflictError):
    """A conditional write lost a race (someone changed the item since it was read): re-read
    and decide again. Raised by the stores; the one retry loop catches exactly this."""

    code = "busy"


class InvalidTransitionError(ConflictError):
    """A deploy cannot move from its current status to the asked one."""

    code = "invalid_transition"


class UnavailableError(RoadieError):
    """A service Roadie depends on (an SCM's API, a network path) cannot answer now. It is
    infrastructure, not bad input: the caller may retry later."""

    code = "unavailable"


class ConfigError(RoadieError):
    """The pipeline configuration is invalid; the message names the key."""

    code = "config_invalid"


class PlanningError(RoadieError):
    """A rollout cannot be planned (no hosts, a migration host not in the fleet, ...)."""

    code = "cannot_plan"
