"""`make run`: database, broker, migrations, admin user, demo catalogue (once), worker,
gunicorn behind a buffering front, and "ready" only when the shop really answers.

Uses DATABASE_URL / REDIS_URL when set, the embedded servers otherwise. The console gets
one line per event that matters; every process logs in full to `.data/logs/`. Ctrl-C
stops every process this started; the next run reuses `.data/` and is up in seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from .embedded import DATA_DIR, ForeignRedis, port_open, start_postgres, start_redis

if TYPE_CHECKING:
    from pgserver import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = DATA_DIR / "logs"
SETTINGS = "shop_search.settings.local"
READY_TIMEOUT_SECONDS = 15 * 60  # a first run on 2 cores embeds 236 photos in ~2.5 minutes
PROGRESS_EVERY_SECONDS = 5
# Lines from the processes' logs worth a line on the console: errors, and nothing else.
CONSOLE_WORTHY = re.compile(r"\b(ERROR|CRITICAL)\b|^Traceback|Error: ")

log = logging.getLogger("run")


def setup_logging() -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(asctime)s run: %(message)s", "%H:%M:%S"))
    full = logging.FileHandler(LOG_DIR / "run.log")
    full.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[console, full], force=True)
    logging.getLogger("pgserver").setLevel(logging.WARNING)


def start(name: str, command: list[str]) -> subprocess.Popen:
    """A child in its own process group (stopping it stops its workers), logging to a file."""
    with open(LOG_DIR / f"{name}.log", "ab") as logfile:
        return subprocess.Popen(command, cwd=ROOT, start_new_session=True, stdout=logfile, stderr=subprocess.STDOUT)


def stop(children: list[subprocess.Popen], timeout: float = 15) -> None:
    """SIGTERM every group, wait, then SIGKILL whatever is left (hung workers included)."""
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def manage(*args: str) -> subprocess.CompletedProcess:
    """A management command, its output to .data/logs/manage.log; on failure, its last lines here."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    with open(LOG_DIR / "manage.log", "a") as logfile:
        logfile.write(f"$ manage.py {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    if result.returncode not in (0, 3):
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise SystemExit(
            f"manage.py {args[0]} failed:\n  " + "\n  ".join(tail) + f"\n(full output: {LOG_DIR}/manage.log)"
        )
    return result


def ensure_admin() -> None:
    """Create the admin once; print the credentials once (and keep them in .data/, 0600)."""
    username = os.environ.get("ADMIN_USER", "admin")
    password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    code = (
        "from django.contrib.auth import get_user_model as g; U=g(); import sys\n"
        f"created = not U.objects.filter(username={username!r}).exists()\n"
        f"created and U.objects.create_superuser({username!r}, 'admin@example.com', {password!r})\n"
        "sys.exit(0 if created else 3)"
    )
    if manage("shell", "-c", code).returncode == 0:
        credentials = DATA_DIR / "admin-credentials.txt"
        credentials.write_text(f"{username}\n{password}\n")
        credentials.chmod(0o600)
        print(f"\n  Admin user created: {username} / {password}  (also in {credentials})\n", flush=True)


def worker_command() -> list[str]:
    """Celery worker with beat; --quiet drops the banner (it is in worker.log anyway)."""
    schedule = str(DATA_DIR / "celerybeat-schedule")
    return [
        *(sys.executable, "-m", "celery", "-A", "shop_search", "--quiet", "worker", "--beat"),
        *("--loglevel", "INFO", "--schedule", schedule),
    ]


def web_command(backend: str) -> list[str]:
    """gunicorn on loopback only: clients reach it through the buffering front."""
    return [
        *(sys.executable, "-m", "gunicorn", "shop_search.wsgi", "--config", "python:shop_search.gunicorn_conf"),
        *("--bind", backend, "--workers", os.environ.get("WEB_CONCURRENCY", "2"), "--threads", "4"),
        *("--timeout", "60", "--access-logfile", str(LOG_DIR / "access.log")),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, timeout: float = 3) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:
            return error.code, {}
    except (OSError, ValueError):
        return 0, {}


def search_answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/?q=gold+ring", timeout=30) as response:
            return response.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def not_ready(health: dict) -> str | None:
    """What the shop is still waiting for, in words; None when every part is ready."""
    for part in ("database", "broker", "worker"):
        if health.get(part) != "ok":
            return f"waiting for the {part} ({health.get(part, 'not answering yet')})"
    if health.get("model", "ok") != "ok":
        return "loading the model"
    pending, images, embedded = health.get("pending", 0), health.get("images", 0), health.get("embedded_images", 0)
    if pending:
        return f"embedding {min(embedded, images)} of {images} photos"
    return None


class LogWatcher(threading.Thread):
    """Puts the lines of the processes' logs that need a person on the console, once each."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(daemon=True)
        self.files = {name: LOG_DIR / f"{name}.log" for name in names}
        self.offsets = {name: path.stat().st_size if path.exists() else 0 for name, path in self.files.items()}

    def run(self) -> None:
        while True:
            for name, path in self.files.items():
                with contextlib.suppress(OSError), open(path, errors="replace") as handle:
                    handle.seek(self.offsets[name])
                    for line in handle:
                        if CONSOLE_WORTHY.search(line):
                            log.warning("%s: %s", name, line.strip()[:200])
                    self.offsets[name] = handle.tell()
            time.sleep(0.5)


def wait_until_ready(base: str, children: list[subprocess.Popen], stop_requested: list[int]) -> bool:
    """Progress lines until /healthz says every part is ready and a search answers."""
    last_said, last_time = "", 0.0
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if stop_requested or any(child.poll() is not None for child in children):
            return False
        status, health = get_json(f"{base}/healthz")
        waiting = "loading the model" if status in (0, 502) else not_ready(health)
        if waiting is None:
            if search_answers(base):
                return True
            waiting = "waiting for the first search to answer"
        now = time.monotonic()
        if waiting != last_said and (not waiting.startswith("embedding") or now - last_time >= PROGRESS_EVERY_SECONDS):
            log.info("%s", waiting)
            last_said, last_time = waiting, now
        time.sleep(1)
    log.error("not ready after %d minutes; see %s", READY_TIMEOUT_SECONDS // 60, LOG_DIR)
    return False


def start_services(children: list[subprocess.Popen]) -> PostgresServer | None:
    """The embedded servers for what the environment does not name; returns the PostgreSQL
    handle (stopped at exit unless a `manage.py` command still uses it); Redis joins children."""
    postgres: PostgresServer | None = None
    if not os.environ.get("DATABASE_URL"):
        log.info("starting the database (embedded PostgreSQL in %s)", DATA_DIR / "pg")
        postgres, os.environ["DATABASE_URL"] = start_postgres(stop_on_exit=True)
    if not os.environ.get("REDIS_URL"):
        try:
            redis_process, os.environ["REDIS_URL"] = start_redis(new_session=True)
        except ForeignRedis as exc:
            raise SystemExit(f"run: {exc}") from None
        if redis_process:
            children.append(redis_process)
    return postgres


def report_indexing(base: str, last: dict) -> None:
    """After "ready": one line when new photos start embedding, and one when they are done."""
    status, health = get_json(f"{base}/healthz")
    if status != 200:
        if last.get("healthy", True):
            log.warning("the shop stopped answering /healthz (%s)", status or "no answer")
        last["healthy"] = False
        return
    if not last.get("healthy", True):
        log.info("the shop answers again")
    last["healthy"] = True
    missing = health.get("photos_missing", 0)
    if missing != last.get("missing", 0):
        if missing:
            log.warning("%d photos have no file in the media folder: import those products again", missing)
        last["missing"] = missing
    pending, images, embedded = health.get("pending", 0), health.get("images", 0), health.get("embedded_images", 0)
    now = time.monotonic()
    if pending and now - last.get("said_at", 0) >= PROGRESS_EVERY_SECONDS * 2:
        log.info("embedding %d of %d photos", min(embedded, images), images)
        last["said_at"], last["busy"] = now, True
    elif not pending and last.get("busy"):
        log.info("all %d photos indexed", images)
        last["busy"] = False


def main() -> int:
    stop_requested: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, frame: stop_requested.append(number))
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ.setdefault("MEDIA_ROOT", str(DATA_DIR / "media"))
    setup_logging()
    port = int(os.environ.get("PORT", "8000"))
    if port_open("127.0.0.1", port):
        raise SystemExit(f"run: port {port} is in use; stop what uses it or pick another: PORT=8080 make run")
    children: list[subprocess.Popen] = []
    postgres = start_services(children)
    try:
        log.info("migrating the database")
        manage("migrate", "--noinput", "-v", "0")
        ensure_admin()
        log.info("demo catalogue (loaded on the first run only)")
        log.info("%s", manage("load_demo_catalog", "--seed", "-v", "0").stdout.strip())
        manage("collectstatic", "--noinput", "-v", "0")
        backend = f"127.0.0.1:{free_port()}"
        children.append(start("worker", worker_command()))
        children.append(start("web", web_command(backend)))
        children.append(
            start("front", [sys.executable, "-m", "shop_search.front", "--port", str(port), "--backend", backend])
        )
        LogWatcher(["web", "worker", "front"]).start()
        base = f"http://127.0.0.1:{port}"
        log.info("starting web and worker; the shop answers at %s once ready", base)
        if wait_until_ready(base, children, stop_requested):
            log.info("ready: %s/  admin: %s/admin/  (logs: %s)", base, base, LOG_DIR)
        indexing: dict = {}
        while not stop_requested and all(child.poll() is None for child in children):
            time.sleep(0.5)
            if time.monotonic() - indexing.get("checked_at", 0) >= PROGRESS_EVERY_SECONDS:
                indexing["checked_at"] = time.monotonic()
                report_indexing(base, indexing)
        if stop_requested:
            log.info("stopping")
            return 0
        log.error("a process exited unexpectedly; stopping the rest (see %s)", LOG_DIR)
        return 1
    finally:
        stop(list(reversed(children)))
        if postgres is not None:
            postgres.cleanup()
        log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
