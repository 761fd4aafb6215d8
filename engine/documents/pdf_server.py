"""LibreOffice processes behind the PDF converter: warm unoserver workers and the plumbing shared
with one-shot conversions (child environment with our fontconfig, exclusive profiles, clean kills).

Internal to ``engine.documents.pdf``: the exceptions here describe *what happened to a worker*;
``pdf.PdfConverter`` decides whether that means retry, fallback or a ``ConversionError``.
"""

from __future__ import annotations

import fcntl
import http.client
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import xmlrpc.client
from contextlib import suppress
from importlib import metadata
from pathlib import Path
from typing import Any

from unoserver.client import UnoClient

log = logging.getLogger(__name__)

SERVER_PYTHON = "/usr/bin/python3"  # Debian's Python: the only one here that can `import uno`
FONTS_CONF = Path(__file__).resolve().parent / "fonts" / "fonts.conf"
WORD_IMPORT_FILTER = "MS Word 2007 XML"  # never let LibreOffice guess: it would render any bytes as text
_PDFA2_OPTIONS = ["SelectPdfVersion=2", "ExportBookmarksToPDFDestination=true"]
_PROBE_TIMEOUT = 5.0  # one readiness/health probe
_BACKSTOP_MARGIN = 15  # unoserver's own --conversion-timeout: only for when our watchdog cannot act
_REAP_GRACE = 5.0  # for LibreOffice's own processes to be reaped by their parents
_TRANSPORT_ERRORS = (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError)
# Runs unoserver, and kills its whole group once the platform process is gone: atexit does not
# run on SIGKILL or a crash, and an orphaned LibreOffice would hold ~170 MB and its profile forever.
# The platform passes its own pid: a platform killed while the server is still starting (before this
# thread runs) must not be mistaken for the init process that adopted us.
_SERVER_BOOTSTRAP = """
import os, signal, sys, threading, time
def orphaned(parent=int(os.environ.pop("CREDITFLOW_PLATFORM_PID"))):
    while os.getppid() == parent:
        time.sleep(0.5)
    os.killpg(0, signal.SIGKILL)
threading.Thread(target=orphaned, daemon=True).start()
from unoserver.server import main
sys.exit(main())
"""


class WorkerStartError(Exception):
    """The unoserver process exited or did not answer before the start deadline."""


class WorkerDied(Exception):
    """The worker stopped answering during a conversion (crash, kill, recycling race)."""


class WorkerTimeout(Exception):
    """The conversion ran past the timeout; the worker was stopped."""


class DocumentRejected(Exception):
    """The worker is healthy but LibreOffice refused this document."""


def office_env(**extra: str) -> dict[str, str]:
    """Environment for LibreOffice children: our fontconfig (Windows font names → Noto CJK /
    Liberation) without touching /etc, and none of the app venv's Python variables."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env["FONTCONFIG_FILE"] = str(FONTS_CONF)
    env.update(extra)
    return env


def prepare_pylib(office_dir: Path) -> Path:
    """A PYTHONPATH directory holding only symlinks to our venv's unoserver (package and
    dist-info, which it reads its version from), so /usr/bin/python3 can run the server
    without seeing the rest of the venv."""
    pylib = office_dir / "pylib"
    pylib.mkdir(parents=True, exist_ok=True)
    dist = metadata.distribution("unoserver")
    package = Path(str(dist.locate_file("unoserver/__init__.py"))).parent
    info = next(Path(str(dist.locate_file(f))).parent for f in dist.files or [] if f.name == "METADATA")
    for target in (package, info):
        link = pylib / target.name
        if link.is_symlink() and link.readlink() == target:
            continue
        tmp = pylib / f".{target.name}.{os.getpid()}.{threading.get_ident()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)  # atomic, so concurrent starts never see a missing package
    return pylib


class ProfileClaim:
    """Exclusive use of one LibreOffice profile directory (``<office_dir>/<prefix>-N``).

    Two LibreOffice processes on one profile block or crash each other, so each directory is
    guarded by an flock (held by this process for as long as the claim lives, also across
    processes sharing the data dir). Profiles are reused: creating one costs 1–2 s.
    """

    def __init__(self, office_dir: Path, prefix: str) -> None:
        for index in range(1, 1000):
            fd = os.open(office_dir / f"{prefix}-{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._fd: int | None = fd
            self.path = office_dir / f"{prefix}-{index}"
            return
        raise WorkerStartError(f"no free LibreOffice profile under {office_dir}")

    def discard_profile(self) -> None:
        """Start the next LibreOffice on a fresh profile (after a kill may have left it corrupt)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ProfileClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a child started with ``start_new_session`` and everything it spawned.

    Killing the whole group at once would orphan soffice.bin and oosplash to PID 1, which in a
    container is often no init that reaps. So the tree is killed from the leaves up, each process
    reaped by its still-living parent; the group leader, our own child, is reaped here.
    """
    pgid = proc.pid
    for name in ("soffice.bin", "oosplash"):
        victims = [pid for pid, comm, state in _group_members(pgid) if comm == name and pid != pgid and state != "Z"]
        for pid in victims:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + _REAP_GRACE
        while any(Path(f"/proc/{pid}").exists() for pid in victims) and time.monotonic() < deadline:
            time.sleep(0.01)
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()


def _group_members(pgid: int) -> list[tuple[int, str, str]]:
    """(pid, name, state) of every process in group ``pgid``, zombies included (Linux /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError):
            text = stat.read_text()
            state, _ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]
            if int(pgrp) == pgid:
                members.append((int(stat.parent.name), text[text.index("(") + 1 : text.rindex(")")], state))
    return members


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class _FailFastClient(UnoClient):
    """UnoClient whose connection check fails at once: the stock one retries a refused
    connection 5 times, 10 s apart, which would stall a request on a dead worker for 40 s."""

    def _connect(self, proxy: Any, retries: int = 1, sleep: float = 0) -> Any:
        return super()._connect(proxy, retries=1, sleep=0)


class _TimeoutTransport(xmlrpc.client.Transport):
    """Probes must not block on a server that accepted the connection but never answers."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = super().make_connection(host)
        conn.timeout = self._timeout
        return conn


class UnoWorker:
    """One unoserver process (with its LibreOffice) on its own ports and its own profile.

    Not thread-safe: the pool hands a worker to one thread at a time.
    """

    def __init__(self, office_dir: Path, pylib: Path, soffice: str, conversion_timeout: int) -> None:
        self._office_dir = office_dir
        self._pylib = pylib
        self._soffice = soffice
        self._conversion_timeout = conversion_timeout
        self._claim = ProfileClaim(office_dir, "worker")
        self.name = self._claim.path.name
        self._proc: subprocess.Popen[bytes] | None = None
        self._port = 0
        self.uses = 0
        self.broken = False

    @property
    def pid(self) -> int | None:
        """The unoserver pid, which is also the process group of its LibreOffice."""
        return self._proc.pid if self.running else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float) -> None:
        """Start and wait until the server answers; on a first failure retry on a fresh profile."""
        try:
            self._start_once(timeout)
        except WorkerStartError as exc:
            log.warning("PDF worker %s did not start (%s); retrying on a fresh profile", self.name, exc)
            self._claim.discard_profile()
            self._start_once(timeout)

    def _start_once(self, timeout: float) -> None:
        self.stop()
        self._port, uno_port = _free_ports(2)
        temp_dir = self._office_dir / f"{self.name}-tmp"
        temp_dir.mkdir(exist_ok=True)
        cmd = [
            SERVER_PYTHON, "-c", _SERVER_BOOTSTRAP,
            "--interface", "127.0.0.1", "--port", str(self._port), "--uno-port", str(uno_port),
            "--user-installation", str(self._claim.path),  # a path: unoserver 3.7 crashes on file:// URIs
            "--executable", self._soffice,
            "--conversion-timeout", str(self._conversion_timeout + _BACKSTOP_MARGIN),
            "--temp-dir", str(temp_dir),
        ]  # fmt: skip
        env = office_env(
            PYTHONPATH=str(self._pylib),
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONNOUSERSITE="1",
            CREDITFLOW_PLATFORM_PID=str(os.getpid()),
        )
        with open(self._office_dir / f"{self.name}.log", "ab") as logfile:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                cmd, stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
            )  # fmt: skip
        self._wait_until_ready(timeout)
        self.uses = 0
        self.broken = False

    def _wait_until_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._proc.poll() is not None:
                raise WorkerStartError(f"unoserver exited with code {self._proc.returncode}: {self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise WorkerStartError(f"unoserver did not answer within {timeout:.0f} s: {self._log_tail()}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self._port}", transport=_TimeoutTransport(_PROBE_TIMEOUT))
        try:
            proxy.info()
        except (*_TRANSPORT_ERRORS, xmlrpc.client.Fault):
            return False
        return True

    def _log_tail(self) -> str:
        with suppress(OSError):
            lines = (self._office_dir / f"{self.name}.log").read_text(errors="replace").splitlines()
            return " | ".join(lines[-5:])
        return "(no log)"

    def convert(self, docx: bytes) -> bytes:
        """DOCX bytes → PDF/A-2b bytes. On timeout our watchdog kills the group (leaves first):
        unoserver's own timeout only SIGTERMs oosplash, orphaning soffice.bin, and a wedged
        server would not answer at all; so a caller never hangs and nothing is left behind."""
        fired = threading.Event()

        def watchdog() -> None:
            fired.set()
            self.stop()

        timer = threading.Timer(self._conversion_timeout, watchdog)
        timer.daemon = True
        timer.start()
        client = _FailFastClient(server="127.0.0.1", port=str(self._port))
        try:
            pdf = client.convert(
                indata=docx, convert_to="pdf", filter_options=_PDFA2_OPTIONS, infiltername=WORD_IMPORT_FILTER
            )
        except xmlrpc.client.Fault as exc:
            raise self._classify(fired, exc.faultString) from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._classify(fired, f"{type(exc).__name__}: {exc}") from exc
        finally:
            timer.cancel()
            timer.join()  # a watchdog already running finishes its kill before we look at the worker
        self.uses += 1
        return pdf

    def _classify(self, fired: threading.Event, reason: str) -> Exception:
        if fired.is_set() or "TimeoutError" in reason:  # ours, or unoserver's backstop (it then exits)
            self.broken = True
            return WorkerTimeout(reason)
        if self.running and self._answers():
            return DocumentRejected(reason)
        self.broken = True
        return WorkerDied(reason)

    def stop(self) -> None:
        if self._proc is not None:
            kill_group(self._proc)
            self._proc = None

    def close(self) -> None:
        self.stop()
        self._claim.release()
