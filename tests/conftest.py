"""Shared fixtures: the corpus of webhook events lives in tests/events/."""

from __future__ import annotations

from pathlib import Path

EVENTS = Path(__file__).parent / "events"
