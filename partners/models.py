"""Partner API keys: the library's hashed key (visible prefix, revocable, expiring) plus
the two things it lacks, scopes and when the key was last used."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey

from .choices import Scope, all_scopes

# Recording every request would make each API read a write; a minute is precise enough
# to tell a live integration from a forgotten key.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class PartnerAPIKey(AbstractAPIKey):
    scopes = ArrayField(
        models.CharField(max_length=20, choices=Scope.choices),
        default=all_scopes,
        help_text="What the key may do: search, catalog reads, or both.",
    )
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Last successful request (to the minute)."
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "partner API key"
        verbose_name_plural = "partner API keys"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def record_use(self) -> None:
        """Stamp the last use, at most once per LAST_USED_RESOLUTION (no write in between)."""
        now = timezone.now()
        if self.last_used_at is not None and now - self.last_used_at < LAST_USED_RESOLUTION:
            return
        type(self).objects.filter(pk=self.pk).update(last_used_at=now)
        self.last_used_at = now
