"""Atomic writes give files the mode ``open()`` would (0666 less the umask), not mkstemp's private 0600."""

from __future__ import annotations

import os
import stat

import pytest

from advdla.atomic import write_atomic, write_json_atomic, write_text_atomic


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_follow_the_umask(tmp_path, umask):
    before = os.umask(umask)
    try:
        paths = [write_text_atomic(tmp_path / "a.txt", "x"), write_json_atomic(tmp_path / "b.json", {"a": 1}),
                 write_atomic(tmp_path / "c.bin", lambda tmp: tmp.write_bytes(b"\0"))]
        plain = tmp_path / "plain"
        plain.write_text("x")
    finally:
        os.umask(before)
    want = stat.S_IMODE(plain.stat().st_mode)
    assert want == 0o666 & ~umask
    assert [stat.S_IMODE(p.stat().st_mode) for p in paths] == [want] * 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
