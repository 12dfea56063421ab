"""The shop's request handler in release 3.0.0: the catalogue now loads each product's price
history one query at a time (an N+1), so it is ~150 ms slower, and every tenth request times out
on the history service and answers 503. A visibly worse release, for the demo's graphs.
"""

from __future__ import annotations

import time

RENDER_SECONDS = 0.02
PRICE_HISTORY_SECONDS = 0.15  # the N+1: one slow lookup per page
FAILING_EVERY = 10  # 1 in 10 requests fails


def handle(path: str, seq: int) -> tuple[int, str]:
    """Serve one request; ``seq`` numbers this host's requests. Returns (status, body)."""
    if path not in ("/", "/products"):
        return 404, "not found"
    time.sleep(RENDER_SECONDS + PRICE_HISTORY_SECONDS)
    if seq % FAILING_EVERY == FAILING_EVERY - 1:
        return 503, "price history unavailable"
    return 200, "Teapot 12.00 (was 14.00), Mug 8.00"
