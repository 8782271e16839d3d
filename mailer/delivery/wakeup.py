"""Wakes a delivery process when a webhook has queued emails.

A gunicorn worker wakes its own delivery threads with a `threading.Event`. A delivery
process of its own (`sysnotify-mailer deliver --watch`, used with `delivery.enabled: false`
in the workers) cannot see that event, and polling the outbox often enough for an idle email
to leave within milliseconds would cost a query many times a second. So the process listens
on a UNIX datagram socket next to the store, and each webhook that queued an email sends it
one byte after its commit. The byte only says "look now": a lost one (no listener, a full
socket buffer) costs at most one poll interval, never an email, because the outbox is the
only source of work.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("gunicorn.error")

# sun_path holds 108 bytes on Linux, including the terminating NUL.
LONGEST_SOCKET_PATH = 107


def socket_path(store_path: Path | str) -> Path:
    """Where the delivery process of the store at `store_path` listens."""
    return Path(f"{store_path}.wake")


class Waker:
    """Sends wake-up bytes to `path`, without waiting and without failing, over one socket
    opened on first use (a webhook is a hot path: no socket per call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None

    def notify(self) -> None:
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)
                self._sock = sock
            self._sock.sendto(b"!", str(self.path))
        except OSError:
            pass  # nobody listens, or the buffer is full: the poll interval covers it


def _listened_on(path: Path) -> bool:
    """Whether a live process listens on `path` (its socket takes a wake-up byte)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(b"!", str(path))
        return True
    except BlockingIOError:
        return True  # its buffer is full: it is there, just busy
    except OSError:
        return False  # refused: the socket file of a process that is gone


class WakeListener:
    """Calls `on_wake` for every datagram sent to `path`, in a daemon thread."""

    def __init__(self, path: Path, on_wake: Callable[[], None]) -> None:
        self.path = path
        self.on_wake = on_wake
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def start(self) -> bool:
        """Binds the socket and starts listening; False (and a warning) when it cannot."""
        if len(os.fsencode(self.path)) > LONGEST_SOCKET_PATH:
            log.warning("delivery: %s is too long for a socket path; polling only", self.path)
            return False
        if self.path.exists() and _listened_on(self.path):
            log.warning(
                "delivery: another delivery process listens on %s; this one polls", self.path
            )
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.path.unlink(missing_ok=True)  # left over from a process that was killed
            sock.bind(str(self.path))
        except OSError as error:
            sock.close()
            log.warning("delivery: cannot listen on %s (%s); polling only", self.path, error)
            return False
        sock.settimeout(1.0)  # checks for stop() at least once a second
        self._sock = sock
        self._thread = threading.Thread(target=self._listen, name="sysnotify-wakeup", daemon=True)
        self._thread.start()
        return True

    def _listen(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stopped.is_set():
            try:
                data = sock.recv(64)
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            if data and not self._stopped.is_set():
                self.on_wake()

    def stop(self) -> None:
        self._stopped.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            self.path.unlink(missing_ok=True)
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
