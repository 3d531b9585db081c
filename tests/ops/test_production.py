"""The production settings as they run for real: gunicorn (DEBUG off) on the machine's
PostgreSQL and Redis, behind the buffering front `make run` uses. Styled error pages for
the shop, the API's JSON error shape for the API, static files, `check --deploy`, and 50
slow clients that cannot stall /healthz."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import psycopg
import pytest
from django.conf import settings

from tests.conftest import ROOT, wait_until
from tests.security.live import free_port

pytestmark = pytest.mark.slow
SECRET = "production-test-" + "k" * 50


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def fetch(url: str, timeout: float = 30) -> Answer:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), error.read())


def production_database() -> str:
    """A database of our own on the machine's PostgreSQL, migrated by the production settings."""
    db = settings.DATABASES["default"]
    name = f"{db['NAME'].removeprefix('test_')}_production"
    host = db.get("HOST") or "127.0.0.1"
    with psycopg.connect(
        host=host, port=db.get("PORT") or 5432, user=db.get("USER") or "postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgres://{db.get('USER') or 'postgres'}@{host}:{db.get('PORT') or 5432}/{name}"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("production")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_"))}
    env.update(
        {
            "SECRET_KEY": SECRET,
            "DATABASE_URL": production_database(),
            "REDIS_URL": settings.REDIS_URL,
            "MEDIA_ROOT": str(folder / "media"),
            "STATIC_ROOT": str(folder / "static"),
            "SEARCH_MODEL": "tiny-test",
            "SEARCH_INFERENCE_BACKEND": "eager",
            "TORCH_THREADS": "1",
            "TRUSTED_PROXY_COUNT": "1",
            # No TLS proxy in this test: the front speaks plain HTTP. check --deploy runs
            # below with the real default (redirect on).
            "SECURE_SSL_REDIRECT": "False",
            "PYTHONPATH": str(ROOT),
        }
    )
    manage = {**env, "DJANGO_SETTINGS_MODULE": "shop_search.settings.production"}
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        result = subprocess.run(
            [sys.executable, "manage.py", *command, "-v", "0"],
            cwd=ROOT,
            env=manage,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    backend, port = free_port(), free_port()
    log = folder / "server.log"
    logfile = open(log, "ab")  # noqa: SIM115  (held by the servers until the module's tests end)
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "shop_search.wsgi",
                "--config",
                "python:shop_search.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{backend}",
                "--workers",
                "1",
                "--threads",
                "4",
                "--no-control-socket",
            ],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": "tests.ops.production_settings"},
            stdout=logfile,
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "shop_search.front", "--port", str(port), "--backend", f"127.0.0.1:{backend}"],
            cwd=ROOT,
            env=env,
            stdout=logfile,
            stderr=subprocess.STDOUT,
        ),
    ]
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert all(p.poll() is None for p in processes), log.read_text()[-4000:]
        with contextlib.suppress(OSError):
            return fetch(base + "/healthz", timeout=5).status in (200, 503)
        return False

    try:
        assert wait_until(answers, 180, 0.5), log.read_text()[-4000:]
        yield base, env
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        logfile.close()


def test_wsgi_asgi_and_celery_default_to_the_production_settings(site):
    _, env = site
    script = (
        "import shop_search.wsgi, shop_search.asgi, shop_search.celery; from django.conf import settings;"
        "print(settings.SETTINGS_MODULE, settings.DEBUG)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.split() == ["shop_search.settings.production", "False"], result.stderr[-2000:]


def test_a_missing_shop_page_is_the_styled_404_with_its_stylesheet_served(site):
    base, _ = site
    page = fetch(base + "/products/NO-SUCH-PIECE/")
    assert page.status == 404
    assert page.headers["Content-Type"].startswith("text/html")
    assert "We could not find that page" in page.text
    assert "Traceback" not in page.text
    assert "DEBUG" not in page.text
    stylesheet = re.search(r'href="(/static/css/shop\.[0-9a-f]{12}\.css)"', page.text)
    assert stylesheet, page.text  # the hashed name collectstatic wrote
    css = fetch(base + stylesheet.group(1))
    assert css.status == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert b".error-page" in css.body


def test_a_failing_shop_page_is_the_styled_500(site):
    base, _ = site
    page = fetch(base + "/boom/")
    assert page.status == 500
    assert "Something went wrong on our side" in page.text
    assert "RuntimeError" not in page.text
    assert re.search(r'href="/static/css/shop\.[0-9a-f]{12}\.css"', page.text)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v2/", 404, "not_found"),
        ("/api/v2/search/", 404, "not_found"),
        ("/api/v1/no-such-endpoint/", 404, "not_found"),
        ("/api/v1/boom/", 500, "internal_error"),
    ],
)
def test_api_errors_are_json_in_the_api_error_shape(site, path, status, code):
    base, _ = site
    answer = fetch(base + path)
    assert answer.status == status
    assert answer.headers["Content-Type"].startswith("application/json")
    body = json.loads(answer.body)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code


def test_check_deploy_is_clean_with_the_production_settings(site):
    _, env = site
    env = {key: value for key, value in env.items() if key != "SECURE_SSL_REDIRECT"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "shop_search.settings.production", "ALLOWED_HOSTS": "shop.example.com"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def slow_client(port: int, stop: threading.Event) -> None:
    """Slowloris: a request whose headers arrive one line a second and never end."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        line = 0
        while not stop.wait(1):
            sock.sendall(f"X-Slow-{line}: 1\r\n".encode())
            line += 1


def test_fifty_slow_clients_do_not_stall_healthz(site):
    base, _ = site
    port = int(base.rsplit(":", 1)[1])
    stop = threading.Event()
    clients = [threading.Thread(target=slow_client, args=(port, stop), daemon=True) for _ in range(50)]
    for client in clients:
        client.start()
    try:
        time.sleep(3)  # every slow client is connected and has sent a few lines
        timings = []
        for _ in range(3):
            started = time.monotonic()
            assert fetch(base + "/healthz", timeout=20).status in (200, 503)
            timings.append(time.monotonic() - started)
            time.sleep(0.5)
    finally:
        stop.set()
    assert max(timings) < 1.0, timings
