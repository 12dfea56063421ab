"""Use cases: request a deploy, drive a rollout step by step, read the records."""
