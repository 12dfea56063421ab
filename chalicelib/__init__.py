"""Roadie: everything that runs in Lambda."""
