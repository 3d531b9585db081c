"""The production files agree with the code: every variable the settings read is in
.env.example, the units run what exists, and compose.yaml is valid where Compose exists."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

# Read by the settings, but only the test settings' own hooks: not for a shop to set.
TEST_ONLY = {"INDEX_TEST_BATCH_DELAY_SECONDS"}


def variables_the_settings_read() -> set[str]:
    names = set()
    for path in (ROOT / "shop_search" / "settings").glob("*.py"):
        names |= set(re.findall(r"\benv(?:_bool|_int|_list)?\(\s*\"([A-Z][A-Z0-9_]*)\"", path.read_text()))
    return names - TEST_ONLY


def test_env_example_lists_every_variable_the_settings_read_with_its_default():
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    assert variables_the_settings_read() - listed == set()
    for name in variables_the_settings_read():
        line = text.index(f"{name}=")
        comment_before = text[max(0, line - 300) : line]
        assert "default" in comment_before, f"{name} has no default written above it"


def test_systemd_units_run_the_production_entry_points():
    units = {path.name: path.read_text() for path in (ROOT / "deploy" / "systemd").glob("*.service")}
    assert "gunicorn shop_search.wsgi" in units["shop-search-web.service"]
    assert "celery -A shop_search --quiet worker" in units["shop-search-worker.service"]
    assert "celery -A shop_search --quiet beat" in units["shop-search-beat.service"]
    assert "scripts/backup.sh" in units["shop-search-backup.service"]
    for name, text in units.items():
        assert "EnvironmentFile=/etc/shop-search/env" in text, name
    assert (ROOT / "scripts" / "backup.sh").is_file()


def test_nginx_buffers_requests_with_header_and_body_timeouts():
    for name in ("shop-search.conf", "compose.conf"):
        text = (ROOT / "deploy" / "nginx" / name).read_text()
        for directive in ("client_header_timeout 10s;", "client_body_timeout 30s;", "proxy_request_buffering on;"):
            assert directive in text, (name, directive)
        assert "X-Forwarded-Proto $scheme" in text
        assert "ssl_certificate" in text


def test_compose_file_parses_and_names_every_service():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert {"db", "redis", "migrate", "web", "worker", "beat", "nginx"} <= set(compose["services"])
    assert compose["services"]["db"]["image"].startswith("pgvector/pgvector:")


@pytest.mark.skipif(
    not shutil.which("docker") or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode,
    reason="the docker compose plugin is not installed here",
)
def test_docker_compose_config_accepts_the_compose_file(tmp_path):
    env_file = ROOT / ".env"
    created = not env_file.exists()
    if created:
        env_file.write_text("POSTGRES_PASSWORD=example\nSECRET_KEY=example\n")
    try:
        result = subprocess.run(["docker", "compose", "config", "--quiet"], cwd=ROOT, capture_output=True, text=True)
    finally:
        if created:
            env_file.unlink()
    assert result.returncode == 0, result.stderr
