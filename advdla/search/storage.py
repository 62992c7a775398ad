"""Where a search study lives: the database-URL helpers that the search and the suite build's workers share.

Context: Optuna and the suite build's work queue both talk to SQLAlchemy. ``postgresql://`` means a different
driver to different SQLAlchemy versions (psycopg 3 for 2.1, psycopg2 for 2.0), so a URL is given the driver that
is installed before either opens it.
"""

from __future__ import annotations

import importlib.util

__all__ = ["with_driver"]


def with_driver(url: str) -> str:
    """``postgresql://...`` with the installed driver named (``postgresql+psycopg://...``); other URLs unchanged."""
    if not url.startswith("postgresql://"):
        return url
    driver = next((d for d in ("psycopg", "psycopg2") if importlib.util.find_spec(d)), None)
    return f"postgresql+{driver}://{url.removeprefix('postgresql://')}" if driver else url
