"""Benchmarks on the embedded stack. They print counts and ratios and assert nothing about time
(the machine is shared and noisy). ``python -m bench`` runs every one; see bench/README.md."""
