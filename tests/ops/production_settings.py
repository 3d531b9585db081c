"""The production settings exactly, plus two URLs that raise, so the 500 pages can be seen."""

from shop_search.settings.production import *  # noqa: F403

ROOT_URLCONF = "tests.ops.production_urls"
