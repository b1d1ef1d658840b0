"""Give back the pages of the embedded engine's library that only its start touched.

chdb's library is over 500 MB of code and constants; loading it runs the engine's start-up
(registering every function, format and table engine), which leaves about 230 MB of it resident
although metering's inserts and queries use a fraction of that. Once the engine is up, those
mappings are paged out with madvise(MADV_PAGEOUT): clean file pages are dropped (the kernel reads
a page back from the file the moment it is used again) and a page the process changed stays, since
it has nowhere to go without swap. Nothing is lost either way; the pages in use come back as the
work touches them, so what stays resident is what metering uses.

Linux 5.4 or later; elsewhere, or if the kernel refuses, nothing happens.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

MADV_PAGEOUT = 21  # linux/mman.h


def library_mappings(library: str, maps: str) -> list[tuple[int, int]]:
    """(start, end) of every mapping of `library` in a /proc/<pid>/maps text."""
    found = []
    for line in maps.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5] == library:
            start, _, end = parts[0].partition("-")
            found.append((int(start, 16), int(end, 16)))
    return found


def page_out_library(library: str) -> int:
    """Page out this process's mappings of `library` (a path as /proc/self/maps spells it);
    return the bytes advised (0 when the platform or the kernel does not do it)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        maps = Path("/proc/self/maps").read_text()
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return 0
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    advised = 0
    for start, end in library_mappings(library, maps):
        if madvise(start, end - start, MADV_PAGEOUT) == 0:
            advised += end - start
    return advised


def page_out_engine() -> int:
    """Page out chdb's library, if this process loaded it (see the module's docstring)."""
    module = sys.modules.get("chdb._chdb")
    library = getattr(module, "__file__", None)
    if not library:
        return 0
    return page_out_library(str(Path(library).resolve()))
