"""Unit tests of chalicelib.webhooks: signatures, transport checks and per-provider parsing."""
