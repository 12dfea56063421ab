"""Tracing and the audit table in the template: every function traced (Powertools Tracer),
allowed exactly the X-Ray calls that needs, and the functions that change records may append
audit events while only the API reads them."""

from __future__ import annotations

from typing import Any

from chalicelib.config import BUNDLED_CONFIG, load_pipeline
from infra import iam, template

DEMO = load_pipeline(BUNDLED_CONFIG, {"ROADIE_STATE_DIR": "/srv/roadie-state"})


def merged() -> dict[str, Any]:
    resources: dict[str, Any] = template.build_merge_template("dev", DEMO)["Resources"]
    return resources


def test_every_function_is_traced_and_may_send_its_traces() -> None:
    resources = merged()
    n = template.names("dev")
    for logical_id, function in template.all_functions().items():
        assert resources[logical_id]["Properties"]["Tracing"] == "Active", logical_id
        statements = iam.function_statements(logical_id, n.function_name(function), n, DEMO)
        xray = [s for s in statements if any(a.startswith("xray:") for a in s["Action"])]
        assert [sorted(s["Action"]) for s in xray] == [
            ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
        ]


def test_the_audit_table_is_written_by_every_function_and_read_only_by_the_api() -> None:
    tables = {t.logical_id: t for t in template.names("dev").tables}
    assert tables["AuditTable"].env_var == "ROADIE_AUDIT_TABLE"
    for logical_id, access in iam.ACCESS.items():
        granted = set(access.tables.get(iam.AUDIT, ()))
        expected = (
            {"dynamodb:PutItem", "dynamodb:Query"}
            if logical_id == "APIHandler"
            else {"dynamodb:PutItem"}
        )
        assert granted == expected, logical_id
