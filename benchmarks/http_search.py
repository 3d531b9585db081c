"""End to end over HTTP: gunicorn (the app's config) on the bench database, photos POSTed
to /api/v1/search/ one at a time, encoding included.

Every photo is unique (a random crop and re-encode of a demo photo at full size), so the
query-embedding cache does not help: that is the "uncached" latency. The same photos
sent again measure the cached path (no encoding). The server runs once per backend in
the same run (eager = the baseline), each with WEB_CONCURRENCY=2 and TORCH_THREADS=cores,
and the serving backend once more with TORCH_THREADS=1 (2 workers x 1 thread = 2 cores);
the faster of the two serving configurations is reported.
"""

from __future__ import annotations

import io
import logging
import socket
import subprocess
import sys
import time

import numpy as np

from .common import OUT_DIR, ROOT, bench_env, percentile

logger = logging.getLogger("benchmarks.http")


def query_photos(n: int, seed: int = 7) -> list[bytes]:
    from PIL import Image, ImageEnhance

    from ml.data.giva import load_products, product_image_bytes

    rng = np.random.default_rng(seed)
    products = load_products()
    photos = []
    for _i in range(n):
        image = Image.open(io.BytesIO(product_image_bytes(products[int(rng.integers(len(products)))]))).convert("RGB")
        w, h = image.size
        scale = rng.uniform(0.75, 0.95)
        cw, ch = int(w * scale), int(h * scale)
        x, y = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
        image = image.crop((x, y, x + cw, y + ch)).resize((w, h))
        image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.85, 1.15)))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(80, 95)))
        photos.append(buffer.getvalue())
    return photos


def api_key() -> str:
    from partners.models import PartnerAPIKey

    PartnerAPIKey.objects.filter(name="benchmark").delete()
    _, key = PartnerAPIKey.objects.create_key(name="benchmark", scopes=["search", "catalog"])
    return key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, backend: str, extra_env: dict[str, str], log_name: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = bench_env()
        env.update(extra_env)
        env.update(
            {
                "SEARCH_INFERENCE_BACKEND": backend,
                "WEB_CONCURRENCY": "2",
                "API_SEARCH_RATE": "1000000/min",
                "LOG_LEVEL": "WARNING",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
            }
        )
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = OUT_DIR / f"gunicorn-{log_name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "python:benchmarks.gunicorn_bench",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "120",
                "shop_search.wsgi",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def _search(session, url: str, key: str, photo: bytes) -> tuple[float, dict]:
    started = time.perf_counter()
    response = session.post(
        f"{url}/api/v1/search/",
        headers={"Authorization": f"Api-Key {key}"},
        files={"image": ("query.jpg", photo, "image/jpeg")},
        data={"k": "20"},
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"search answered {response.status_code}: {response.text[:300]}")
    return elapsed, response.json()


def measure_backend(
    backend: str, photos: list[bytes], cached: int, key: str, extra_env: dict[str, str], log_name: str | None = None
) -> dict:
    import requests

    server = Server(backend, extra_env, log_name or backend)
    try:
        session = requests.Session()
        deadline = time.monotonic() + 240
        warm = query_photos(4, seed=99)
        ready = 0
        while ready < 4:  # both workers answer a search (warmed up) before timing
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not come up; see {server.log_path}")
            try:
                _search(session, server.url, key, warm[ready])
                ready += 1
            except (requests.ConnectionError, RuntimeError):
                time.sleep(1)
        uncached, took, strategies = [], [], set()
        for photo in photos:
            elapsed, body = _search(session, server.url, key, photo)
            uncached.append(elapsed * 1000)
            took.append(body["took_ms"])
            strategies.add(body["strategy"])
        hits = [_search(session, server.url, key, photo)[0] * 1000 for photo in photos[:cached]]
    finally:
        server.stop()
    return {
        "uncached_p50_ms": round(percentile(uncached, 50), 1),
        "uncached_p95_ms": round(percentile(uncached, 95), 1),
        "cached_p50_ms": round(percentile(hits, 50), 1),
        "cached_p95_ms": round(percentile(hits, 95), 1),
        "server_took_p50_ms": round(percentile(took, 50), 1),
        "queries": len(photos),
        "cached_queries": len(hits),
        "strategies": sorted(strategies),
    }


def run(backends: list[str], n: int, n_baseline: int, extra_env: dict[str, str], threads_variant: bool = True) -> dict:
    from django.core.cache import cache

    key = api_key()
    photos = query_photos(n)
    rows = {}
    configs = [(backend, {}) for backend in backends]
    if threads_variant:  # the serving backend again with 1 torch/ORT thread per worker
        configs.append((f"{backends[-1]}-1thread", {"TORCH_THREADS": "1"}))
    for label, env in configs:
        cache.clear()  # Redis db 5: no embedding of these photos survives from a previous run
        backend = label.removesuffix("-1thread")
        count = n if backend != "eager" else min(n, n_baseline)
        logger.info("HTTP search with %s: %d unique photos", label, count)
        rows[label] = measure_backend(
            backend, photos[:count], max(10, count // 3), key, {**extra_env, **env}, log_name=label
        )
        logger.info("%s: %s", label, rows[label])
    serving = min((label for label, _ in configs if label != "eager"), key=lambda label: rows[label]["uncached_p95_ms"])
    result = {
        "query.image_p50_ms": rows[serving]["uncached_p50_ms"],
        "query.image_p95_ms": rows[serving]["uncached_p95_ms"],
        "query.image_cached_p95_ms": rows[serving]["cached_p95_ms"],
        "query.http_config": serving,
        "query.http_detail": rows,
    }
    if "eager" in rows and serving != "eager":
        result["query.image_p95_speedup_vs_eager"] = round(
            rows["eager"]["uncached_p95_ms"] / rows[serving]["uncached_p95_ms"], 2
        )
    return result


if __name__ == "__main__":  # pragma: no cover - run through benchmarks.run
    sys.exit("run through `python -m benchmarks.run`")
