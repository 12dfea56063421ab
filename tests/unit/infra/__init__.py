"""Tests of the AWS deployment artefacts: merge template, IAM policy, packaging."""
