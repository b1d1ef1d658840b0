"""The state directory of `llmgw up`: what lives where, its lock, and the generated key secret.

<state>/llmgw.lock   held (flock) by the running `llmgw up`; holds its pid
<state>/secret       the key secret (LLMGW_SECRET_KEY) generated at the first start, mode 0600
<state>/nats/        JetStream: queues, keys, users, teams, budgets, settings
<state>/clickhouse/  the usage store (chdb)
<state>/logs/        one log per component: <component>.log (JSON lines)
<state>/run/         heartbeat files of the workers and metering
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from llmgw.secrets import MIN_SECRET_LENGTH, new_server_secret


class AlreadyRunningError(RuntimeError):
    """Another `llmgw up` holds this state directory."""


class StateError(RuntimeError):
    """The state directory cannot be used (one line says why)."""


class StateLock:
    """An exclusive flock on `<state>/llmgw.lock`, held while the object lives (released by the
    kernel if the process dies, whatever happens to its children)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunningError(
                f"llmgw is already running in {self.path.parent}" + (f" (pid {holder})" if holder else "")
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # (closing releases the flock)
            self._fd = None

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


class StateDir:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def lock_path(self) -> Path:
        return self.root / "llmgw.lock"

    @property
    def secret_path(self) -> Path:
        return self.root / "secret"

    @property
    def nats_dir(self) -> Path:
        return self.root / "nats"

    @property
    def clickhouse_dir(self) -> Path:
        return self.root / "clickhouse"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def log_path(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    def heartbeat_path(self, component: str) -> Path:
        return self.run_dir / f"{component}.heartbeat"

    def lock(self) -> StateLock:
        """Take the directory (created if need be); AlreadyRunningError if another `up` has it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the state directory {self.root}: {exc.strerror}") from None
        lock = StateLock(self.lock_path)
        try:
            lock.acquire()
        except OSError as exc:  # (AlreadyRunningError is no OSError)
            raise StateError(f"cannot write in the state directory {self.root}: {exc.strerror}") from None
        return lock

    def prepare(self) -> None:
        """The sub-directories the components write to (once the lock is held)."""
        for path in (self.logs_dir, self.run_dir):
            path.mkdir(exist_ok=True)

    def secret(self) -> str | None:
        """The key secret kept here: read, or generated at the first start of a fresh directory.

        None for a directory whose stores were made before secrets were kept here: its keys were
        hashed under the secret derived from the master key, which then stays in use."""
        try:
            text = self.secret_path.read_text().strip()
        except FileNotFoundError:
            if self.nats_dir.exists():
                return None
            return self._generate_secret()
        except OSError as exc:
            raise StateError(f"cannot read the key secret {self.secret_path}: {exc.strerror}") from None
        if len(text) < MIN_SECRET_LENGTH:
            raise StateError(f"the key secret in {self.secret_path} is shorter than {MIN_SECRET_LENGTH} characters")
        if self.secret_path.stat().st_mode & 0o077:
            self.secret_path.chmod(0o600)
        return text

    def _generate_secret(self) -> str:
        secret = new_server_secret()
        try:
            fd = os.open(self.secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secret + "\n")
        except OSError as exc:
            raise StateError(f"cannot write the key secret {self.secret_path}: {exc.strerror}") from None
        return secret
