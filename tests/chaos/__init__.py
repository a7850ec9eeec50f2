"""Reliability drills: crashes, server restarts, provider and tool faults, load.

`make chaos` runs every drill at full size and prints one summary (`python -m tests.chaos`);
`test_chaos.py` runs a small version of each in `make test`.
"""
