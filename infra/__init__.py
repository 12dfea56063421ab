"""Deployment artefacts for AWS: the SSM Command document, the host script, templates."""
