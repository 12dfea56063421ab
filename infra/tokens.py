"""API tokens for the SecureString `/roadie/<stage>/api-tokens` (`{"<name>": "<sha256 hex>"}`).

    python -m infra.tokens new ci-bot          # a fresh random token, and its entry to store
    python -m infra.tokens hash ci-bot < file  # the entry for a token you already have (stdin)

The token itself is printed once, on stderr, for you to hand over; only its hash is stored.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
from collections.abc import Sequence

from chalicelib.adapters.secrets import token_hash

NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}\Z")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("new", "hash"))
    parser.add_argument("name", help="who uses the token; recorded as requested_by")
    args = parser.parse_args(argv)
    if not NAME_RE.match(args.name):
        print(f"tokens: a name must match {NAME_RE.pattern}", file=sys.stderr)
        return 2
    if args.command == "new":
        token = secrets.token_urlsafe(32)
        print(
            f"token for {args.name} (shown once; store only the entry below): {token}",
            file=sys.stderr,
        )
    else:
        token = sys.stdin.readline().strip()
        if len(token) < 16:
            print("tokens: give a token of at least 16 characters on stdin", file=sys.stderr)
            return 2
    print(json.dumps({args.name: token_hash(token)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
