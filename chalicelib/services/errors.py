"""Errors the services raise on purpose (the domain's are in ``domain/errors.py``)."""

from __future__ import annotations

from ..domain.errors import RoadieError


class LeaseLostError(RoadieError):
    """This rollout no longer holds its environment's lock (its lease ran out)."""

    code = "lease_lost"


class CancelRequestedError(RoadieError):
    """Raised by dispatch instead of sending the next step of a cancelled deploy."""

    code = "cancel_requested"
