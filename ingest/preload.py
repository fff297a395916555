"""Imported once by the workers' fork server (ingest/parallel.py): the worker code, and the
built-in boilerplate rules compiled, so every worker forked from it starts with both instead
of importing and compiling them itself (~0.5 s of CPU a worker)."""

import ingest.clean  # noqa: F401  (the code every worker runs)
from ingest.rules import load_rules

load_rules(())
