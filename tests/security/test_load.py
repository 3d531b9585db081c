"""The load benchmark against a real gunicorn on our own PostgreSQL and Redis: 20
concurrent clients mixing text, filtered, photo and API searches must see no failures
and no runaway memory. CI-sized: LOAD_TEST_SECONDS (default 60) of measured load."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

from .live import start_stack

SECONDS = float(os.environ.get("LOAD_TEST_SECONDS", "60"))

CREATE_KEY = """
import django; django.setup()
from partners.models import PartnerAPIKey
print(PartnerAPIKey.objects.create_key(name="load", scopes=["search"])[1])
"""


@pytest.fixture(scope="module")
def loaded_server(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("load"))
    try:
        stack.seed(24)
        key = (
            subprocess.run(
                [sys.executable, "-c", CREATE_KEY],
                cwd=ROOT,
                env=stack.env(),
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        server = stack.start_gunicorn(workers=2, threads=4, API_SEARCH_RATE="100000/min")
        yield stack, server, key
    finally:
        stack.close()


def test_load_benchmark_refuses_non_loopback_targets():
    for url in ("http://10.0.0.5:8000", "http://example.com", "https://127.0.0.1:8000"):
        result = subprocess.run(
            [sys.executable, "benchmarks/load.py", "--url", url, "--seconds", "1"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0
        assert "loopback" in result.stderr or "must be" in result.stderr


@pytest.mark.slow
def test_twenty_clients_mixed_searches_no_errors_no_memory_growth(loaded_server, tmp_path):
    _, server, key = loaded_server
    out = tmp_path / "load.json"
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/load.py",
            "--url",
            server.base_url,
            "--seconds",
            str(SECONDS),
            "--warmup",
            "5",
            "--clients",
            "20",
            "--pid",
            str(server.process.pid),
            "--api-key",
            key,
            "--max-rss-growth-mb",
            "150",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SECONDS + 180,
    )
    report = json.loads(out.read_text())
    print(json.dumps(report, indent=2))
    assert result.returncode == 0, report["failures"]
    assert report["errors"] == 0
    assert report["clients"] == 20
    assert {"text", "filtered", "image", "api_text", "api_image"} <= set(report["latency_ms"])
    assert report["operations"] > 20
    assert report["latency_ms"]["all"]["p99"] > 0
    assert report["rss_mb"]["growth"] < 150
    assert "Internal Server Error" not in server.log.read_text()
