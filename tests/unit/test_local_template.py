"""What the local stack leaves out of the packaged template, and only that."""

from __future__ import annotations

from devstack.provision import drop_unsupported

TEMPLATE = {
    "Parameters": {"PollSeconds": {"Type": "Number", "Default": 5}},
    "Resources": {
        "RestAPI": {"Type": "AWS::Serverless::Api", "Properties": {}},
        "APIHandler": {"Type": "AWS::Serverless::Function", "Properties": {"Timeout": 25}},
        "APIHandlerInvokePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": {"Ref": "APIHandler"},
                "SourceArn": {"Fn::Sub": "arn:aws:execute-api:${AWS::Region}:x:${RestAPI}/*"},
            },
        },
        "ApiAccount": {"Type": "AWS::ApiGateway::Account", "Properties": {}},
        "ApiErrorsAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {"Dimensions": [{"Name": "ApiName", "Value": "roadie-dev"}]},
        },
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
    },
    "Outputs": {
        "EndpointURL": {"Value": {"Fn::Sub": "https://${RestAPI}.execute-api.amazonaws.com/api/"}},
        "GitHubWebhookUrl": {"Value": {"Fn::GetAtt": ["RestAPI", "RootResourceId"]}},
        "TableName": {"Value": {"Ref": "Table"}},
    },
}


def test_api_gateway_alarms_and_what_refers_to_them_are_left_out() -> None:
    local = drop_unsupported(TEMPLATE)
    assert set(local["Resources"]) == {"APIHandler", "Table"}
    assert set(local["Outputs"]) == {"TableName"}
    assert local["Parameters"] == TEMPLATE["Parameters"]
    assert local["Resources"]["APIHandler"] == TEMPLATE["Resources"]["APIHandler"]
    assert "RestAPI" in TEMPLATE["Resources"], "the packaged template itself is not changed"
