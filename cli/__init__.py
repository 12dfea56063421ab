"""Roadie's command-line client (standard library only): ``python -m cli --help``."""
