"""Adapters: the only code that talks to AWS (DynamoDB, SFN, SSM, EC2, parameters, metrics)."""
