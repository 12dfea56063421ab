"""DynamoDB persistence (PynamoDB): deploy records, per-host results, environment locks and
branch heads. Persistence models are not domain models: each repository maps explicitly both
ways, and conditional-write failures become domain errors (``StaleStateError``, ...).

One module per table's concern; this package re-exports what the composition root and the
template use.
"""

from __future__ import annotations

from ...domain.errors import StaleStateError
from .deploys import DeployRepository
from .heads import BRANCH_HEAD_PREFIX, BranchHeadModel, BranchHeadRepository
from .hosts import HostResultRepository
from .models import MODELS, DeployModel, EnvironmentModel, HostResultModel, configure

__all__ = [
    "BRANCH_HEAD_PREFIX",
    "MODELS",
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
