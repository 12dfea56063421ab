"""`python -m devstack demo|serve`: the embedded stack's entry points."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "demo"
    if command == "demo":
        from devstack.demo import main as demo

        return demo()
    if command == "serve":
        from devstack.serve import main as serve

        return serve(argv[1:])
    print("usage: python -m devstack demo | serve [--fresh]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
