"""The local stack's fast DynamoDB answers (devstack/moto_patches.py) are the bytes moto's own
serializer gives, for every item operation Roadie's adapters use and every attribute type."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack import moto_patches

CALLS: list[tuple[str, Any, Any]] = []


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto in-process, answering fast and recording what its serializer would have said."""

    def compared(self: Any, context: Any) -> Any:
        fast = moto_patches._execute_result(self, context)
        if context.service_model.service_name == "dynamodb":
            slow = moto_patches._original_execute_result(self, context)
            CALLS.append((context.operation_model.name, fast, slow))
        return fast

    monkeypatch.setattr(moto_patches.ActionResult, "execute_result", compared)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(key, raising=False)
    CALLS.clear()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


ITEM = {
    "pk": {"S": "app#env"},
    "s": {"S": 'ünïcødé \u2028 "quoted"'},
    "n": {"N": "12.5"},
    "b": {"B": b"\x00\xffbinary"},
    "bool": {"BOOL": False},
    "null": {"NULL": True},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2"]},
    "bs": {"BS": [b"x", b"y"]},
    "l": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"k": {"S": "v"}}}]},
    "m": {"M": {"inner": {"L": []}, "e": {"S": ""}}},
}


def test_item_operations_answer_what_the_serializer_would(dynamodb: Any) -> None:
    for i in range(3):
        dynamodb.put_item(TableName="t", Item={**ITEM, "sk": {"S": f"{i:02d}"}})
    dynamodb.put_item(
        TableName="t",
        Item={**ITEM, "sk": {"S": "00"}},
        ReturnValues="ALL_OLD",
        ReturnConsumedCapacity="TOTAL",
    )
    dynamodb.get_item(TableName="t", Key={"pk": ITEM["pk"], "sk": {"S": "01"}})
    dynamodb.get_item(TableName="t", Key={"pk": ITEM["pk"], "sk": {"S": "missing"}})
    dynamodb.update_item(
        TableName="t",
        Key={"pk": ITEM["pk"], "sk": {"S": "01"}},
        UpdateExpression="SET n = n + :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )
    dynamodb.query(
        TableName="t",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": ITEM["pk"]},
        Limit=2,
        ScanIndexForward=False,
        ReturnConsumedCapacity="TOTAL",
    )
    dynamodb.scan(TableName="t", Select="COUNT")
    dynamodb.batch_get_item(RequestItems={"t": {"Keys": [{"pk": ITEM["pk"], "sk": {"S": "02"}}]}})
    dynamodb.batch_write_item(
        RequestItems={"t": [{"PutRequest": {"Item": {**ITEM, "sk": {"S": "03"}}}}]}
    )
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "t", "Item": {**ITEM, "sk": {"S": "04"}}}},
            {"Delete": {"TableName": "t", "Key": {"pk": ITEM["pk"], "sk": {"S": "03"}}}},
        ]
    )
    dynamodb.transact_get_items(
        TransactItems=[{"Get": {"TableName": "t", "Key": {"pk": ITEM["pk"], "sk": {"S": "04"}}}}]
    )
    dynamodb.delete_item(
        TableName="t", Key={"pk": ITEM["pk"], "sk": {"S": "04"}}, ReturnValues="ALL_OLD"
    )
    seen = {name for name, _, _ in CALLS}
    assert seen >= moto_patches.FAST_DYNAMODB_OPERATIONS, sorted(
        moto_patches.FAST_DYNAMODB_OPERATIONS - seen
    )
    for name, (fast_status, _, fast_body), (slow_status, _, slow_body) in CALLS:
        assert fast_status == slow_status, name
        assert json.loads(fast_body or "{}") == json.loads(slow_body or "{}"), name
