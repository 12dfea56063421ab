"""Contract fixtures: each port's store, as its in-memory fake and as its adapter on moto.

A contract test takes ``deploys``/``hosts``/``heads`` and runs once per implementation
(``fake``, ``dynamo``). The ``dynamo`` variant points the PynamoDB models at fresh tables in
``moto.mock_aws()`` (in process, no server; ``AWS_ENDPOINT_URL`` is removed so nothing leaves
the process) and puts the models' table names back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

IMPLEMENTATIONS = ["fake", "dynamo"]
REGION = "us-east-1"
TABLES = {
    "DeployModel": "contract-deploys",
    "HostResultModel": "contract-deploy-hosts",
    "EnvironmentModel": "contract-environments",
    "BranchHeadModel": "contract-environments",  # heads live in the environments table
    "AuditModel": "contract-audit",
}


@pytest.fixture(scope="module")
def moto_tables() -> Iterator[None]:
    """moto in process for one test module, the models on tables of their own.

    Per module, not per test: a PynamoDB connection costs a botocore client (a few hundred
    ms), and ``configure`` drops them; each test gets empty tables from ``aws`` instead.
    """
    import moto

    from chalicelib.adapters import dynamo

    models: list[Any] = [*dynamo.MODELS, dynamo.BranchHeadModel]
    saved = {m: (m.Meta.table_name, getattr(m.Meta, "region", None)) for m in models}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }.items():
            patch.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
            patch.delenv(name, raising=False)
        # the transactions' cached connection may be another test's (a moto server's)
        patch.setattr(dynamo.models, "_connection", None)
        with moto.mock_aws():
            dynamo.configure({m: TABLES[m.__name__] for m in models}, REGION)
            try:
                yield
            finally:
                for model, (name, region) in saved.items():
                    model.Meta.table_name = name
                    model.Meta.region = region
                    model._connection = None


@pytest.fixture
def aws(moto_tables: None) -> None:
    """Empty tables for this test."""
    empty_tables()


def empty_tables() -> None:
    from chalicelib.adapters import dynamo

    for model in dynamo.MODELS:
        if model.exists():
            model.delete_table()
        model.create_table(wait=False, billing_mode="PAY_PER_REQUEST")


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> str:
    if request.param == "dynamo":
        request.getfixturevalue("aws")
    return str(request.param)
