"""Test-only base models (registered under the `shards` app label, no migration, no base table):
the layer is exercised on models of its own as well as on the product's sharded models."""
from django.db import models
from django.utils import timezone

from wework.db.fields import DateTimeField, UnsignedBigAutoField
from wework.db.models import TableIndex, TableUniqueConstraint


class ProbeEvent(models.Model):
    """A monthly-sharded probe with an FK, a unique uuid and named indexes."""

    id = UnsignedBigAutoField(primary_key=True)
    event_uuid = models.CharField(max_length=36)
    user = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.DO_NOTHING,
                             related_name="probe_events")
    kind = models.CharField(max_length=20, default="text")
    body = models.TextField(null=True, blank=True)
    created_at = DateTimeField(default=timezone.now)

    class Meta:
        app_label = "shards"
        db_table = "probe_events"
        constraints = [TableUniqueConstraint(fields=["event_uuid"], name="uk_event_uuid")]
        indexes = [TableIndex(fields=["kind"], name="idx_kind"),
                   TableIndex(fields=["created_at"], name="idx_created")]

    def shout(self):
        return (self.body or "").upper()


class ProbeDaily(models.Model):
    """A daily-sharded probe whose schema the sync-schema test changes at run time."""

    id = UnsignedBigAutoField(primary_key=True)
    level = models.CharField(max_length=10, default="INFO")
    created_at = DateTimeField(default=timezone.now)

    class Meta:
        app_label = "shards"
        db_table = "probe_daily"
        indexes = [TableIndex(fields=["level"], name="idx_level")]


PROBE_SHARDING = {
    "shards.ProbeEvent": {"by": "month", "time_field": "created_at", "uuid_field": "event_uuid",
                          "hot_days": 30, "cold_days": 365, "create_ahead": 2, "enabled": True},
    "shards.ProbeDaily": {"by": "day", "time_field": "created_at", "hot_days": 2,
                          "cold_days": 7, "create_ahead": 1, "enabled": True},
}
