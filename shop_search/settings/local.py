"""`make run`: the launcher starts an embedded PostgreSQL and Redis and passes their URLs in."""

from .base import *
from .base import env_bool

DEBUG = env_bool("DEBUG", True)
