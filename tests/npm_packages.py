"""npm packages the tests run (the Node `openai` SDK, the Codex CLI), installed from the npm
registry by the test run itself, once per version: into a directory under the temporary directory
(`LLMGW_TEST_NPM_CACHE` to choose another), so a second run finds them there. A test that needs one
is skipped, with the reason, when node or npm is missing or the install fails; one the suite must
run in CI (`required_in_ci`) fails there instead (CI=true)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NoReturn

import pytest

INSTALL_TIMEOUT = 900.0


def npm_cache() -> Path:
    return Path(os.environ.get("LLMGW_TEST_NPM_CACHE") or Path(tempfile.gettempdir()) / "llmgw-test-npm")


def _missing(reason: str, required_in_ci: bool) -> NoReturn:
    if required_in_ci and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def npm_package(name: str, version: str, *, required_in_ci: bool = False) -> Path:
    """The directory whose `node_modules` holds `name@version` (installed on first use)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _missing("node and npm are not installed: the Node clients cannot be run", required_in_ci)
    target = npm_cache() / f"{name.lstrip('@').replace('/', '__')}-{version}"
    marker = target / ".installed"
    target.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # (another test run may be installing it right now)
        if not marker.exists():
            (target / "package.json").write_text('{"private": true}\n')
            done = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", f"{name}@{version}"],
                cwd=target,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
            )
            if done.returncode != 0:
                _missing(f"npm could not install {name}@{version}: {(done.stderr or done.stdout).strip()[-500:]}", required_in_ci)
            marker.write_text(f"{name}@{version}\n")
    return target
