"""The shop's request handler: what one HTTP request to a host runs (the catalogue page).

The embedded stack's traffic generator (devstack/traffic.py) loads this file from each host's
``current`` release and calls ``handle`` per request, so the release's own code decides how
slow a request is and whether it fails.
"""

from __future__ import annotations

import time

RENDER_SECONDS = 0.02  # the catalogue page renders in ~20 ms


def handle(path: str, seq: int) -> tuple[int, str]:
    """Serve one request; ``seq`` numbers this host's requests. Returns (status, body)."""
    if path not in ("/", "/products"):
        return 404, "not found"
    time.sleep(RENDER_SECONDS)
    return 200, "Teapot 12.00, Mug 8.00"
