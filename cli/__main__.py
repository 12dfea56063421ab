"""``python -m cli``: Roadie's command-line client."""

from .main import run

raise SystemExit(run())
