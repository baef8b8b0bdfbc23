"""Tests of the whisk_worker Python runtime (stdlib unittest, no PyPI).

Run from the repository root:

    python3 -m unittest discover -s internal/pyrt/tests -t internal/pyrt

(any interpreter works: /usr/bin/python3 -m unittest discover -s internal/pyrt/tests -t internal/pyrt).
harness.py plays the Go front: it starts real worker processes over
socketpairs and speaks the wire protocol to them; apps/ holds the tiny WSGI
apps, one per behaviour. bench_worker.py measures the per-request cost.
"""
