"""A real, separate stack for outage and load tests: our own embedded PostgreSQL
(pgserver: PostgreSQL 16 + pgvector 0.6, unix socket), our own throwaway redis-server,
and gunicorn serving the app on loopback. The machine's shared PostgreSQL and Redis are
never stopped; only these are."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tests.conftest import ROOT, wait_until

LIVE_SETTINGS = "tests.security.live_settings"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnPostgres:
    """pgserver in a folder of ours; stop() and start() really stop and start it."""

    def __init__(self, folder: Path) -> None:
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

        self.folder = folder
        self.server = pgserver.get_server(folder, cleanup_mode="delete")

    @property
    def socket_dir(self) -> str:
        return str(self.server.get_postmaster_info().socket_dir)

    def url(self, database: str) -> str:
        return f"postgres://postgres@{quote(self.socket_dir, safe='')}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self.server.psql(f"\\c {database}\n{sql}")

    @property
    def bin_dir(self) -> Path:
        from pgserver._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.server.cleanup()


class OwnRedis:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(lambda: _port_open(self.port), 10):
            raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.3):
            return True
    except OSError:
        return False


SEED = """
import django; django.setup()
from decimal import Decimal
from django.core.management import call_command
from catalog.models import ProductImage
from catalog.services import ProductData, upsert_product
from tests.factories import add_product_image_bytes
from indexing.engine import active_version
from indexing.services import index_catalog
from tests.conftest import make_photo
call_command("migrate", verbosity=0)
active_version()
products = []
for i in range({count}):
    category = ["Ring", "Earring", "Necklace", "Pendant"][i % 4]
    product, _ = upsert_product(ProductData(
        sku=f"LIVE-{{i:04d}}", title=f"{{['Rose gold', 'White gold', 'Silver'][i % 3]}} {{category.lower()}} {{i}}",
        description="A piece of jewelry.", category=category, metal_text=["rose gold", "white gold", "silver"][i % 3],
        gemstone_text=["diamond", "ruby", "sapphire", "pearl"][i % 4], price=Decimal(1000 + 250 * i)))
    add_product_image_bytes(product, make_photo(1000 + i))
    products.append(product.pk)
report = index_catalog(products, list(ProductImage.objects.values_list("pk", flat=True)))
print("seeded", len(products), report.images_embedded)
"""


@dataclass
class LiveStack:
    folder: Path
    postgres: OwnPostgres
    redis: OwnRedis
    database: str = "shop"
    servers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def media_root(self) -> Path:
        return self.folder / "media"

    def env(self, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_"))}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": LIVE_SETTINGS,
                "DATABASE_URL": self.postgres.url(self.database),
                "REDIS_URL": self.redis.url,
                "MEDIA_ROOT": str(self.media_root),
                "PYTHONPATH": str(ROOT),
                "TORCH_THREADS": "1",
            }
        )
        env.update(extra)
        return env

    def seed(self, count: int) -> str:
        self.postgres.psql(f"CREATE DATABASE {self.database};")
        result = subprocess.run(
            [sys.executable, "-c", SEED.format(count=count)],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return result.stdout

    def start_gunicorn(
        self, *, workers: int = 1, threads: int = 4, log_name: str = "gunicorn.log", **env: str
    ) -> GunicornServer:
        port = free_port()
        log = self.folder / log_name
        with open(log, "ab") as log_file:  # gunicorn holds its own copy of the file
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "shop_search.wsgi:application",
                    "--config",
                    "python:shop_search.gunicorn_conf",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(workers),
                    "--threads",
                    str(threads),
                    "--timeout",
                    "60",
                    "--graceful-timeout",
                    "5",
                    "--no-control-socket",
                ],
                cwd=ROOT,
                env=self.env(**env),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        self.servers.append(process)
        server = GunicornServer(process, port, log)
        server.wait_ready()
        return server

    def close(self) -> None:
        for process in self.servers:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.redis.close()
        self.postgres.close()


@dataclass
class GunicornServer:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 30) -> tuple[int, dict, bytes]:
        request = urllib.request.Request(self.base_url + path)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def wait_ready(self, timeout: float = 120) -> None:
        def answered():
            assert self.process.poll() is None, self.log.read_text()[-4000:]
            try:
                return self.get("/healthz", timeout=5)[0] in (200, 503)
            except OSError:
                return False

        if not wait_until(answered, timeout, 0.5):
            raise AssertionError("gunicorn did not answer: " + self.log.read_text()[-4000:])


def start_stack(folder: Path) -> LiveStack:
    folder.mkdir(parents=True, exist_ok=True)
    postgres = OwnPostgres(folder / "pg")
    try:
        redis = OwnRedis(folder)
    except Exception:
        postgres.close()
        raise
    return LiveStack(folder, postgres, redis)
