"""`make run`: database, broker, migrations, admin user, demo catalog, worker, web server.

Uses DATABASE_URL / REDIS_URL when set, the embedded servers otherwise. Ctrl-C stops
every process this started; the next run reuses `.data/` and is up in seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from .embedded import DATA_DIR, port_open, start_postgres, start_redis

ROOT = Path(__file__).resolve().parent.parent
logging.basicConfig(level=logging.INFO, format="%(asctime)s run: %(message)s", datefmt="%H:%M:%S")
log = logging.getLogger("run")
logging.getLogger("pgserver").setLevel(logging.WARNING)


def start(command: list[str]) -> subprocess.Popen:
    """A child in its own process group, so stopping it also stops its workers."""
    return subprocess.Popen(command, cwd=ROOT, start_new_session=True)


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


def manage(*args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], check=True, cwd=ROOT)


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
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", code], cwd=ROOT)
    if result.returncode == 0:
        credentials = DATA_DIR / "admin-credentials.txt"
        credentials.write_text(f"{username}\n{password}\n")
        credentials.chmod(0o600)
        print(f"\n  Admin user created: {username} / {password}  (also in {credentials})\n", flush=True)
    elif result.returncode != 3:
        raise SystemExit("could not create the admin user")


def main() -> int:
    stop_requested: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, frame: stop_requested.append(number))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_search.settings.local")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen] = []
    postgres = None
    if not os.environ.get("DATABASE_URL"):
        postgres, os.environ["DATABASE_URL"] = start_postgres(stop_on_exit=True)
        log.info("embedded PostgreSQL (pgserver) in %s", DATA_DIR / "pg")
    if not os.environ.get("REDIS_URL"):
        redis_process, os.environ["REDIS_URL"] = start_redis(new_session=True)
        if redis_process:
            children.append(redis_process)
        log.info("embedded Redis at %s", os.environ["REDIS_URL"])
    os.environ.setdefault("MEDIA_ROOT", str(DATA_DIR / "media"))
    port = os.environ.get("PORT", "8000")
    try:
        manage("migrate", "--noinput", "-v", "0")
        ensure_admin()
        manage("load_demo_catalog")
        manage("collectstatic", "--noinput", "-v", "0")
        children.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "shop_search",
                    "worker",
                    "--beat",
                    "--loglevel",
                    "INFO",
                    "--schedule",
                    str(DATA_DIR / "celerybeat-schedule"),
                ]
            )
        )
        children.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "shop_search.wsgi",
                    "--config",
                    "python:shop_search.gunicorn_conf",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    os.environ.get("WEB_CONCURRENCY", "2"),
                    "--threads",
                    "4",
                    "--timeout",
                    "60",
                    "--access-logfile",
                    "-",
                ]
            )
        )
        for _ in range(240):
            if stop_requested or port_open("127.0.0.1", int(port)) or any(c.poll() is not None for c in children):
                break
            time.sleep(0.25)
        log.info("shop-search is up: http://127.0.0.1:%s/  admin: http://127.0.0.1:%s/admin/", port, port)
        while not stop_requested and all(child.poll() is None for child in children):
            time.sleep(0.5)
        if stop_requested:
            log.info("stopping")
            return 0
        log.error("a process exited unexpectedly; stopping the rest")
        return 1
    finally:
        stop(list(reversed(children)))
        if postgres is not None:
            postgres.cleanup()
        log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
