"""Adapters: the only code that talks to AWS (DynamoDB, Step Functions, SSM, EC2, parameters, metrics)."""
