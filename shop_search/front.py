"""The buffering front `make run` puts before gunicorn, as nginx does in production.

gunicorn's threads read requests themselves, so a client that sends its headers one line a
second holds a thread; about nine of them stalled the site (issue 19). This front (Tornado:
one event loop, a connection costs a socket, not a thread) reads each request whole, within
a header and a body timeout, and only then hands it to gunicorn on loopback. Slow or stuck
clients wait here; gunicorn's threads only ever see complete requests.

    python -m shop_search.front --port 8000 --backend 127.0.0.1:8001
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPHeaders
from tornado.web import Application, RequestHandler

log = logging.getLogger("shop_search.front")

# As deploy/nginx/shop-search.conf: the whole header within 10 s, no pause in a body over 30 s.
HEADER_TIMEOUT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 30.0
# Django refuses bigger bodies itself (REQUEST_MAX_BYTES_ADMIN, 413); this only bounds memory.
MAX_BODY_BYTES = 320 * 1024 * 1024
BACKEND_TIMEOUT_SECONDS = 120.0
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


class BufferedProxy(RequestHandler):
    """Forwards one complete request to gunicorn and its complete answer back."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")

    def initialize(self, backend: str, client: AsyncHTTPClient) -> None:
        self.backend = backend
        self.client = client

    def compute_etag(self) -> None:
        return None  # the app sets its own validators

    async def forward(self) -> None:
        request = self.request
        headers = HTTPHeaders()
        for name, value in request.headers.get_all():
            if name.lower() not in HOP_BY_HOP and name.lower() not in {"x-forwarded-for", "x-forwarded-proto"}:
                headers.add(name, value)
        headers["X-Forwarded-For"] = request.remote_ip or ""
        headers["X-Forwarded-Proto"] = request.protocol
        response = await self.client.fetch(
            HTTPRequest(
                url=f"http://{self.backend}{request.uri}",
                method=request.method,
                headers=headers,
                body=request.body if request.body or request.method in ("POST", "PUT", "PATCH") else None,
                follow_redirects=False,
                decompress_response=False,
                allow_nonstandard_methods=True,
                connect_timeout=5,
                request_timeout=BACKEND_TIMEOUT_SECONDS,
            ),
            raise_error=False,
        )
        self.clear()
        for name in ("Content-Type", "Server"):
            self.clear_header(name)
        if response.code == 599:  # no answer: gunicorn not up yet, or restarting
            self.set_status(502)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.set_header("Retry-After", "5")
            self.finish("The shop is starting or restarting; try again in a few seconds.\n")
            return
        self.set_status(response.code, response.reason)
        for name, value in response.headers.get_all():
            if name.lower() not in HOP_BY_HOP:
                self.add_header(name, value)
        if response.body and request.method != "HEAD" and response.code not in (204, 304):
            self.write(response.body)
        self.finish()

    get = head = post = delete = patch = put = options = forward


def make_app(backend: str) -> Application:
    client = AsyncHTTPClient(max_clients=64, max_body_size=MAX_BODY_BYTES)
    return Application([(r".*", BufferedProxy, {"backend": backend, "client": client})], log_function=_log_request)


def _log_request(handler: RequestHandler) -> None:
    status = handler.get_status()
    level = logging.WARNING if status >= 500 else logging.DEBUG
    log.log(
        level,
        "%d %s %s %.0fms",
        status,
        handler.request.method,
        handler.request.uri,
        handler.request.request_time() * 1000,
    )


async def serve(host: str, port: int, backend: str) -> None:
    server = HTTPServer(
        make_app(backend),
        idle_connection_timeout=HEADER_TIMEOUT_SECONDS,  # Tornado's header timeout: the whole header
        body_timeout=BODY_TIMEOUT_SECONDS,
        max_body_size=MAX_BODY_BYTES,
        max_buffer_size=MAX_BODY_BYTES,
        xheaders=False,  # the client address is the socket's: this is the outermost server
    )
    server.listen(port, host)
    log.info("buffering front on http://%s:%d/ -> gunicorn on %s", host, port, backend)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", required=True, help="host:port of gunicorn")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.host, args.port, args.backend))


if __name__ == "__main__":
    main()
