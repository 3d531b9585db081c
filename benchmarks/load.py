"""A bounded loopback load test of a running shop-search server.

    .venv/bin/python benchmarks/load.py --url http://127.0.0.1:8000 --seconds 60 --clients 20 \
        [--pid GUNICORN_MASTER_PID] [--api-key KEY] [--out benchmarks/out/load.json]

Each client (a thread with its own keep-alive connection and cookies) loops until the
time is up over a mix of what shoppers and partners do: text searches on the page,
filtered searches, photo searches (POST the photo with its CSRF token, follow the
redirect to the results), and, with --api-key, the partner API (words and photos).

Prints and writes JSON: throughput, p50/p95/p99 latency overall and per kind, status
counts, errors, and the server's memory (RSS of the pid and its children: gunicorn's
master and workers) after warm-up and at the end. Exits 1 when any request failed (a 5xx,
a dropped connection, an unexpected status) or memory grew more than --max-rss-growth-mb.

Only loopback targets are accepted: this is a test of a server on this machine.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import ipaddress
import json
import random
import socket
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlencode, urlsplit

MAX_SECONDS = 3600
MAX_CLIENTS = 200
REQUEST_TIMEOUT = 30.0
WORDS = [
    "rose gold oval sapphire ring",
    "white gold diamond ring",
    "silver pendant",
    "pearl studs",
    "gold bangle",
    "ruby earrings",
    "diamond necklace",
    "emerald ring",
    "platinum band",
    "sapphire pendant",
]
FILTERS = [
    {"category": "ring"},
    {"metal": "rose_gold"},
    {"gemstone": "diamond"},
    {"price_max": "5000"},
    {"in_stock": "on"},
    {"category": "pendant", "price_min": "500"},
]
# kind -> weight in the mix (api only with --api-key)
MIX = {"text": 35, "filtered": 25, "image": 25, "api_text": 8, "api_image": 7}


def loopback_only(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SystemExit(f"--url must be http://127.0.0.1:PORT (got {url!r})")
    addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 80)}
    if not addresses or not all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses):
        raise SystemExit(f"refusing to load-test {parts.hostname!r}: only loopback addresses are allowed")
    return parts.hostname, parts.port or 80


def make_photos(count: int = 6) -> list[bytes]:
    from PIL import Image, ImageDraw

    photos = []
    for seed in range(count):
        rng = random.Random(seed)
        image = Image.new("RGB", (480, 480), "white")
        draw = ImageDraw.Draw(image)
        colour = tuple(rng.randrange(40, 230) for _ in range(3))
        r = rng.randrange(90, 180)
        draw.ellipse([240 - r, 240 - r, 240 + r, 240 + r], outline=colour, width=rng.randrange(8, 40))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=88)
        photos.append(buffer.getvalue())
    return photos


def rss_bytes(pid: int) -> int:
    """RSS of a process and all its descendants (gunicorn master + workers)."""
    try:
        import psutil

        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    except ImportError:  # pragma: no cover - psutil is in the venv
        total = 0
        for status in Path("/proc").glob("[0-9]*/status"):
            text = status.read_text(errors="ignore")
            if f"\nPid:\t{pid}\n" in text or f"\nPPid:\t{pid}\n" in text:
                total += int(text.split("VmRSS:")[1].split()[0]) * 1024 if "VmRSS:" in text else 0
        return total
    except Exception:
        return 0


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"count": len(ordered), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 1)}


class Client:
    """One shopper/partner: a keep-alive connection, its cookies, its own random stream."""

    def __init__(self, host: str, port: int, seed: int, photos: list[bytes], api_key: str | None) -> None:
        self.host, self.port = host, port
        self.random = random.Random(seed)
        self.photos = photos
        self.api_key = api_key
        self.cookies: dict[str, str] = {}
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.connection.close()
                self.connection = None  # a keep-alive connection the server closed: one retry
                if attempt == 2:
                    raise
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
            self.connection = None
        return response.status, response, data

    def csrf_token(self) -> str:
        if "csrftoken" not in self.cookies:
            self.request("GET", "/")
        return self.cookies.get("csrftoken", "")

    def text(self) -> list[int]:
        return [self.request("GET", "/?" + urlencode({"text": self.random.choice(WORDS)}))[0]]

    def filtered(self) -> list[int]:
        params = {"text": self.random.choice(WORDS), **self.random.choice(FILTERS)}
        return [self.request("GET", "/?" + urlencode(params))[0]]

    def image(self) -> list[int]:
        token = self.csrf_token()
        boundary = uuid.uuid4().hex
        photo = self.random.choice(self.photos)
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n{token}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="ring.jpg"\r\n'
                f"Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + photo
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, response, _ = self.request(
            "POST",
            "/",
            body,
            {
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Referer": f"http://{self.host}:{self.port}/",
            },
        )
        if status != 302:
            return [status]
        location = urlsplit(response.getheader("Location"))
        return [status, self.request("GET", f"{location.path}?{location.query}")[0]]

    def _api(self, payload: dict) -> list[int]:
        body = json.dumps(payload).encode()
        return [
            self.request(
                "POST",
                "/api/v1/search/",
                body,
                {
                    "Content-Type": "application/json",
                    "Authorization": f"Api-Key {self.api_key}",
                },
            )[0]
        ]

    def api_text(self) -> list[int]:
        filters = self.random.choice([{}, {"metal": "rose_gold"}, {"gemstone": "diamond"}, {"price_max": "5000"}])
        return self._api({"text": self.random.choice(WORDS), "k": 10, **filters})

    def api_image(self) -> list[int]:
        return self._api({"image_base64": base64.b64encode(self.random.choice(self.photos)).decode(), "k": 10})


EXPECTED = {"text": {200}, "filtered": {200}, "image": {302, 200}, "api_text": {200}, "api_image": {200}}


def run(url: str, seconds: float, clients: int, pid: int | None, api_key: str | None, warmup: float) -> dict:
    host, port = loopback_only(url)
    seconds = min(seconds, MAX_SECONDS)
    clients = min(clients, MAX_CLIENTS)
    photos = make_photos()
    mix = {kind: weight for kind, weight in MIX.items() if api_key or not kind.startswith("api")}
    kinds, weights = list(mix), list(mix.values())
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: Counter = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    started = time.monotonic()
    measure_from = started + warmup
    deadline = measure_from + seconds
    rss_start = rss_end = None

    def worker(index: int) -> None:
        client = Client(host, port, seed=index, photos=photos, api_key=api_key)
        while time.monotonic() < deadline:
            kind = client.random.choices(kinds, weights)[0]
            began = time.monotonic()
            try:
                codes = getattr(client, kind)()
                problem = (
                    None if all(code in EXPECTED[kind] or code == 429 for code in codes) else f"{kind}: HTTP {codes}"
                )
            except Exception as exc:
                codes, problem = [], f"{kind}: {type(exc).__name__}: {exc}"
                client.connection = None
            elapsed = (time.monotonic() - began) * 1000
            if began < measure_from:
                continue  # warm-up: caches fill, the model's first queries, connections open
            with lock:
                latencies[kind].append(elapsed)
                statuses.update(str(code) for code in codes)
                if problem:
                    errors.append(problem)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    if pid:
        time.sleep(max(0.0, measure_from - time.monotonic()))
        rss_start = rss_bytes(pid)
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic() + REQUEST_TIMEOUT + 5))
    if pid:
        rss_end = rss_bytes(pid)
    measured = max(1e-9, min(time.monotonic(), deadline) - measure_from)
    all_latencies = [value for values in latencies.values() for value in values]
    report = {
        "url": url,
        "seconds": round(measured, 1),
        "warmup_seconds": warmup,
        "clients": clients,
        "operations": len(all_latencies),
        "throughput_per_second": round(len(all_latencies) / measured, 1),
        "latency_ms": {"all": percentiles(all_latencies), **{k: percentiles(v) for k, v in sorted(latencies.items())}},
        "statuses": dict(sorted(statuses.items())),
        "throttled": statuses.get("429", 0),
        "errors": len(errors),
        "error_samples": sorted(Counter(errors).items(), key=lambda item: -item[1])[:10],
    }
    if pid:
        report["rss_mb"] = {
            "pid": pid,
            "after_warmup": round(rss_start / 2**20, 1),
            "end": round(rss_end / 2**20, 1),
            "growth": round((rss_end - rss_start) / 2**20, 1),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=60, help=f"measured duration (at most {MAX_SECONDS})")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before measuring")
    parser.add_argument("--clients", type=int, default=20, help=f"concurrent clients (at most {MAX_CLIENTS})")
    parser.add_argument("--pid", type=int, help="server pid whose RSS (with its children) is reported")
    parser.add_argument("--api-key", help="a partner API key with the search scope: adds API searches to the mix")
    parser.add_argument("--max-rss-growth-mb", type=float, default=150)
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    args = parser.parse_args(argv)
    report = run(args.url, args.seconds, args.clients, args.pid, args.api_key, args.warmup)
    failures = []
    if report["errors"]:
        failures.append(f"{report['errors']} failed requests")
    if "rss_mb" in report and report["rss_mb"]["growth"] > args.max_rss_growth_mb:
        failures.append(f"memory grew {report['rss_mb']['growth']} MB (limit {args.max_rss_growth_mb} MB)")
    report["ok"] = not failures
    report["failures"] = failures
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
