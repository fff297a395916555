"""What the command line needs of the persistent index before any index is opened: its error
type and how long a run waits for another run's lock. A run without ``--index`` never imports
``ingest.index_store`` (~20 ms of every start: its dataclasses and protocols, ``secrets``)."""

from __future__ import annotations

DEFAULT_WAIT = 3600.0  # seconds a run waits for another run's writer lock before giving up


class IndexStoreError(Exception):
    """The index cannot be used as asked (unreachable, locked too long, unknown run, ...)."""
