"""Paging out the embedded engine's library: which mappings are chosen, and the real call on a
library this process has loaded."""

from __future__ import annotations

import _json
import sys
from pathlib import Path

import pytest

from metering.resident import library_mappings, page_out_library

pytestmark = pytest.mark.unit

MAPS = """\
7f0000000000-7f0000100000 r--p 00000000 08:01 1234 /venv/chdb/_chdb.abi3.so
7f0000100000-7f0000900000 r-xp 00100000 08:01 1234 /venv/chdb/_chdb.abi3.so
7f0000900000-7f0000a00000 rw-p 00000000 00:00 0
7f0000a00000-7f0000b00000 r-xp 00000000 08:01 99 /usr/lib/libc.so.6
7f0000b00000-7f0000b10000 r--p 00000000 08:01 5 /venv/chdb/_chdb.abi3.so (deleted)
"""


def test_only_the_named_library_is_chosen() -> None:
    assert library_mappings("/venv/chdb/_chdb.abi3.so", MAPS) == [
        (0x7F0000000000, 0x7F0000100000),
        (0x7F0000100000, 0x7F0000900000),
    ]
    assert library_mappings("/nowhere.so", MAPS) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps and MADV_PAGEOUT are Linux's")
def test_a_loaded_library_is_paged_out_and_still_works() -> None:
    path = str(Path(_json.__file__).resolve())  # an extension module: a shared library this process mapped
    mapped = library_mappings(path, Path("/proc/self/maps").read_text())
    assert mapped
    assert page_out_library(path) == sum(end - start for start, end in mapped)
    assert _json.encode_basestring_ascii("still here") == '"still here"'
