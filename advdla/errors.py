"""One exception type for every user-facing mistake.

Anything the user can fix (a bad model name, a component the model lacks, a corrupt suite file) raises
:class:`AdvdlaError` with a single line saying what is wrong and how to fix it. The CLI prints that line and
exits with status 2; it never shows a traceback from deep inside torch for such mistakes.
"""

from __future__ import annotations

import difflib


class AdvdlaError(Exception):
    """A mistake in the user's input, reported as one line."""


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """A ' Did you mean X?' suffix for an unknown name, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""
