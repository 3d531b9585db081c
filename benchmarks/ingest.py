"""Indexing throughput end to end: CSV import -> on_commit tasks -> Redis -> Celery worker
-> embeddings in PostgreSQL, until `index_status` says nothing is pending.

    .venv/bin/python benchmarks/ingest.py --photos 200
    .venv/bin/python benchmarks/ingest.py --photos 400 --model tiny-test      # the plumbing alone

It works in a scratch database (`<DATABASE_URL name>_bench`, dropped afterwards unless
--keep), its own redis-server on a free port and a temporary media folder, and starts its
own worker with beat (one process, like `make run`). The baseline, measured in the same
run on the same photos, is the model alone in this process (decode + image backbone +
fusion, no database, no broker): the ratio says what the pipeline costs.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def generated_photo(seed: int, size: int = 640) -> bytes:
    """A jewelry-ish product photo (a coloured ring on white), different for every seed."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    colour = tuple(rng.randrange(40, 230) for _ in range(3))
    cx, cy, r = size // 2 + rng.randrange(-40, 40), size // 2 + rng.randrange(-40, 40), size // rng.choice([3, 4])
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=max(4, r // rng.choice([3, 5, 8])))
    for _ in range(rng.randrange(2, 6)):
        x, y = rng.randrange(size), rng.randrange(size)
        draw.rectangle(
            [x, y, x + rng.randrange(10, 80), y + rng.randrange(10, 80)],
            fill=tuple(rng.randrange(256) for _ in range(3)),
        )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_catalog(folder: Path, photos: int, per_product: int) -> Path:
    rows = ["sku,title,description,category,metal,metal_color,gemstone,price,images"]
    categories = ["Ring", "Earring", "Necklace", "Pendant", "Bangle", "Bracelet"]
    for product in range(0, photos, per_product):
        names = []
        for seed in range(product, min(photos, product + per_product)):
            (folder / f"{seed}.jpg").write_bytes(generated_photo(seed))
            names.append(f"{seed}.jpg")
        rows.append(
            f"BENCH-{product:06d},Bench piece {product},A generated piece of jewelry,"
            f"{categories[product % len(categories)]},18k gold,yellow,diamond,{1000 + product},{';'.join(names)}"
        )
    path = folder / "catalog.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def scratch_database(url: str, suffix: str = "_bench") -> tuple[str, str]:
    """(scratch DATABASE_URL, its name), created empty."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/") + suffix
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}")), name


def drop_database(url: str, name: str) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    """A redis-server of this run alone: nobody else's flush can drop its queue."""
    from shop_search.embedded import port_open, redis_server_binary

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            shutil.which("redis-server") or redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
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
    for _ in range(100):
        if port_open("127.0.0.1", port):
            return server, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    server.kill()
    raise SystemExit("redis-server did not start")


def model_only_rate(photo_files: list[Path], batch_size: int) -> float:
    """Photos/s of the model alone in this process: the baseline."""
    from indexing.engine import active_version, model_for_version
    from ml.preprocess import load_image

    model = model_for_version(active_version())
    model.image_features([load_image(photo_files[0].read_bytes())])  # warm
    from ml.model import FusionInput

    started = time.perf_counter()
    for start in range(0, len(photo_files), batch_size):
        images = [load_image(path.read_bytes()) for path in photo_files[start : start + batch_size]]
        features = model.image_features(images, batch_size=batch_size)
        model.fuse([FusionInput(image_features=row[None, :]) for row in features])
    return len(photo_files) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--per-product", type=int, default=2, help="photos per product")
    parser.add_argument("--model", default=None, help="SEARCH_MODEL (default: the configured one)")
    parser.add_argument("--fusion-weights", default=None, help="SEARCH_FUSION_WEIGHTS override")
    parser.add_argument("--batch-size", type=int, default=None, help="EMBED_IMAGE_BATCH_SIZE")
    parser.add_argument("--torch-threads", type=int, default=None, help="TORCH_THREADS of the worker")
    parser.add_argument("--baseline-photos", type=int, default=64, help="photos in the model-only baseline")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on `kill` too
    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop_search")
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    redis_server, redis_url = start_redis(work)
    try:
        database_url, database_name = scratch_database(base_url)
    except BaseException:
        redis_server.kill()
        raise
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop_search.settings.local",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "MEDIA_ROOT": str(work / "media"),
        "LOG_LEVEL": "WARNING",
    }
    for name, value in {
        "SEARCH_MODEL": args.model,
        "SEARCH_FUSION_WEIGHTS": args.fusion_weights,
        "EMBED_IMAGE_BATCH_SIZE": args.batch_size,
        "TORCH_THREADS": args.torch_threads,
    }.items():
        if value is not None:
            env[name] = str(value)
    os.environ.update(env)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from indexing.engine import active_version
    from indexing.services import index_status
    from shop_search.celery import app

    worker = None
    try:
        call_command("migrate", verbosity=0)
        version = active_version()  # registered here, before the worker races to do it
        photos = work / "photos"
        photos.mkdir()
        csv_path = write_catalog(photos, args.photos, args.per_product)
        photo_files = sorted(photos.glob("*.jpg"), key=lambda p: int(p.stem))

        baseline = model_only_rate(photo_files[: args.baseline_photos], settings.EMBED_IMAGE_BATCH_SIZE)

        log = open(work / "worker.log", "wb")  # noqa: SIM115 - the worker writes to it until the end
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "shop_search",
                "worker",
                "--beat",
                "--pool",
                "solo",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--schedule",
                str(work / "beat-schedule"),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while not app.control.ping(timeout=0.5):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start; see {work / 'worker.log'}")

        started = time.perf_counter()
        call_command("import_catalog", str(csv_path), "--images-root", str(photos), verbosity=0)
        imported = time.perf_counter() - started
        deadline = time.monotonic() + args.timeout
        while (status := index_status())["pending"]:
            if time.monotonic() > deadline:
                raise SystemExit(f"still {status['pending']} pending after {args.timeout}s")
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        rate = status["embedded_images"] / elapsed

        print(
            f"model        {version.version}  (torch threads {settings.TORCH_THREADS}, "
            f"image batch {settings.EMBED_IMAGE_BATCH_SIZE}, cpus {os.cpu_count()})"
        )
        print(
            f"catalog      {status['products']} products, {status['images']} photos "
            f"({status['embedded_images']} embedded, {status['failed']} failed)"
        )
        print(f"import       {imported:.1f}s (CSV rows + photo files into the catalog)")
        print(f"end to end   {elapsed:.1f}s  ->  {rate:.1f} photos/s (import start to pending == 0)")
        print(f"baseline     {baseline:.1f} photos/s (model alone in one process, no DB, no broker)")
        print(f"ratio        {rate / baseline:.2f} of the model-only rate")
        return 0
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        from django.db import connections

        connections.close_all()
        redis_server.kill()
        redis_server.wait()
        if args.keep:
            print(f"kept database {database_name}, media in {work}")
        else:
            drop_database(base_url, database_name)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
