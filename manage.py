#!/usr/bin/env python
"""`manage.py` talks to the same shop as `make run`: the local settings, and the embedded
PostgreSQL and Redis under `.data/` (started here when `make run` is not up, and stopped
again on exit). An explicit DJANGO_SETTINGS_MODULE, DATABASE_URL or REDIS_URL wins."""

import os
import sys

LOCAL_SETTINGS = "shop_search.settings.local"
# Commands that never touch the database or the broker: no servers to start for them.
OFFLINE_COMMANDS = {"help", "version", "--help", "-h", "--version", "makemigrations", "collectstatic", "check"}


def start_embedded_services(argv: list[str]) -> None:
    if os.environ["DJANGO_SETTINGS_MODULE"] != LOCAL_SETTINGS or len(argv) < 2 or argv[1] in OFFLINE_COMMANDS:
        return
    from shop_search import embedded

    try:
        if not os.environ.get("DATABASE_URL"):
            embedded.start_postgres(stop_on_exit=True)
        if not os.environ.get("REDIS_URL") and not os.environ.get("CELERY_BROKER_URL"):
            embedded.start_redis_for_command()
    except embedded.ForeignRedis as exc:
        sys.exit(f"manage.py: {exc}")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", LOCAL_SETTINGS)
    start_embedded_services(sys.argv)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
