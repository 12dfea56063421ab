"""DynamoDB persistence (PynamoDB): deploy records, per-host results, environment locks and
branch heads. Persistence models are not domain models: each repository maps explicitly both
ways, and conditional-write failures become domain errors (``StaleStateError``, ...).

One module per table's concern; this package re-exports what the composition root and the
template use.
"""

from __future__ import annotations

from pynamodb.models import Model

from ...domain.errors import StaleStateError
from .audit import AuditModel, AuditRepository
from .deploys import DeployRepository
from .heads import BRANCH_HEAD_PREFIX, BranchHeadModel, BranchHeadRepository
from .hosts import HostResultRepository
from .models import MODELS as _TABLE_MODELS
from .models import DeployModel, EnvironmentModel, HostResultModel, configure

# Every model with a table of its own (the template makes one table per model here).
MODELS: tuple[type[Model], ...] = (*_TABLE_MODELS, AuditModel)

__all__ = [
    "BRANCH_HEAD_PREFIX",
    "MODELS",
    "AuditModel",
    "AuditRepository",
    "BranchHeadModel",
    "BranchHeadRepository",
    "DeployModel",
    "DeployRepository",
    "EnvironmentModel",
    "HostResultModel",
    "HostResultRepository",
    "StaleStateError",
    "configure",
]
