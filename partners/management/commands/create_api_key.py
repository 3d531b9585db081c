"""`manage.py create_api_key NAME [--scope search] [--expires-in-days 90]`: prints the key once."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from partners.choices import Scope
from partners.models import PartnerAPIKey

_name_max_length = PartnerAPIKey._meta.get_field("name").max_length
assert _name_max_length is not None  # a CharField always has one
NAME_MAX_LENGTH: int = _name_max_length


class Command(BaseCommand):
    help = "Create a partner API key. The key is printed once; only its hash is stored."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="Who the key is for, e.g. 'acme-partner-site'.")
        parser.add_argument(
            "--scope",
            action="append",
            choices=Scope.values,
            dest="scopes",
            help="What the key may do; repeat for several (default: all).",
        )
        parser.add_argument("--expires-in-days", type=int, default=None, help="Expire the key after this many days.")

    def handle(self, *args, name: str, scopes: list[str] | None, expires_in_days: int | None, **options) -> None:
        name = name.strip()
        if not name or len(name) > NAME_MAX_LENGTH:
            raise CommandError(f"The name must be 1 to {NAME_MAX_LENGTH} characters.")
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be positive.")
        expiry = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        created, key = PartnerAPIKey.objects.create_key(
            name=name, scopes=sorted(set(scopes or Scope.values)), expiry_date=expiry
        )
        # rest_framework_api_key types its manager's results as AbstractAPIKey; the row is ours.
        api_key = cast(PartnerAPIKey, created)
        self.stderr.write(
            f"Created API key {api_key.name!r} (prefix {api_key.prefix}, scopes {', '.join(api_key.scopes)}"
            + (f", expires {expiry:%Y-%m-%d}" if expiry else "")
            + "). Store it now: it cannot be shown again. Send it as 'Authorization: Api-Key <key>'."
        )
        self.stdout.write(key)
