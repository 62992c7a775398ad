"""One exception type for every user-facing mistake.

Anything the user can fix (a bad model name, a component the model lacks, a corrupt suite file) raises
:class:`AdvdlaError` with a single line saying what is wrong and how to fix it. The CLI prints that line and
exits with status 2; it never shows a traceback from deep inside torch for such mistakes.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Iterator


class AdvdlaError(Exception):
    """A mistake in the user's input, reported as one line."""


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """A ' Did you mean X?' suffix for an unknown name, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


# Words with which a message tells the user what to do; a message without any gets the caller's fix appended.
_FIX = re.compile(r"\b(rebuild|build one|pass|use|give|upgrade|choose|install|add|re-score|rescore|point)\b", re.I)


def with_fix(message: str, fix: str) -> str:
    """``message``, then ``fix`` (after a colon) unless the message already says what to do."""
    return message if _FIX.search(message) else f"{message}: {fix}"


@contextlib.contextmanager
def fix_hint(fix: str) -> Iterator[None]:
    """Re-raise an :class:`AdvdlaError` from the block with ``fix`` appended when its message names no fix (the
    face knows what to do about a stage's finding: a suite that fails its checks is rebuilt, for instance)."""
    try:
        yield
    except AdvdlaError as exc:
        message = with_fix(str(exc), fix)
        if message == str(exc):
            raise
        raise AdvdlaError(message) from None
