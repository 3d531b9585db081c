"""What every benchmark shares: the bench database and Redis, timing, percentiles, logging.

Benchmarks never touch the databases of the app or the tests: they run on their own
PostgreSQL database (`shop_search_perf`, created and migrated here) and Redis db 5.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "benchmarks" / "out"  # git-ignored: plots, logs, per-run files
CACHE_DIR = ROOT / ".cache" / "bench"  # git-ignored: base embeddings reused between runs
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgres://postgres@127.0.0.1:5432")
# Not "shop_search_bench": benchmarks/ingest.py drops and re-creates that one as its scratch.
BENCH_DB = os.environ.get("BENCH_DB", "shop_search_perf")
BENCH_DATABASE_URL = f"{PG_SERVER}/{BENCH_DB}"
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
PROTECTED_DATABASES = {"shop_search", "test", "test_test", "postgres"}

logger = logging.getLogger("benchmarks")


def setup_logging() -> None:
    # The root logger stays at WARNING: onnxruntime's quantizer logs every tensor at INFO.
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("benchmarks").setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    for noisy in ("ml", "search", "catalog", "django", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def bench_env() -> dict[str, str]:
    """Environment of a benchmark process or server: the bench database and Redis db 5."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": BENCH_DATABASE_URL,
            "REDIS_URL": BENCH_REDIS_URL,
            "CELERY_BROKER_URL": BENCH_REDIS_URL,
            "DJANGO_SETTINGS_MODULE": "shop_search.settings.base",
            "DEBUG": "0",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def ensure_database(name: str = BENCH_DB) -> None:
    """Create the bench database (never one of the app's or the tests') and migrate it."""
    if name in PROTECTED_DATABASES or name.startswith("test"):
        raise SystemExit(f"refusing to benchmark on the database {name!r}")
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            logger.info("created database %s", name)
    env = bench_env()
    env["DATABASE_URL"] = f"{PG_SERVER}/{name}"
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)


def setup_django(database: str = BENCH_DB) -> None:
    """Django in this process, pointed at the bench database and Redis db 5."""
    for key, value in bench_env().items():
        if key != "PYTHONPATH":
            os.environ[key] = value
    os.environ["DATABASE_URL"] = f"{PG_SERVER}/{database}"
    import django

    django.setup()


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_ms(samples_s: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan"),
        "n": len(ms),
    }


def time_calls(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


@contextmanager
def stopwatch(into: dict, key: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        into[key] = round(time.perf_counter() - started, 2)


def load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")
