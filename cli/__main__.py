"""``python -m cli``: Roadie's command-line client."""

from .roadie import run

raise SystemExit(run())
