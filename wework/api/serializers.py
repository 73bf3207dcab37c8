"""Serializer bases of every app's API: ids in a body that the database cannot hold are field
errors, never a 500 at the query.

A whole number outside a signed BIGINT (`2**70`) names no row, and SQLite cannot even bind it
(OverflowError). `ModelSerializer` (the base of every app's model serializers) makes its
foreign keys `PrimaryKeyRelatedField`s that answer such a number like the id of no row
("Invalid pk ... - object does not exist."); `IdField` does the same for ids a plain
serializer reads as numbers (`account`, `template`, `reply_to`).
"""
from django.db import models
from rest_framework import relations, serializers

from wework.api.filters import out_of_id_range
from wework.ids import fits_bigint


class IdField(serializers.IntegerField):
    """A row's id in a body: a whole number; one beyond a BIGINT is "object does not exist"."""

    default_error_messages = {
        "does_not_exist": relations.PrimaryKeyRelatedField.default_error_messages["does_not_exist"],
    }

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not fits_bigint(value):
            self.fail("does_not_exist", pk_value=data)
        return value


class PrimaryKeyRelatedField(relations.PrimaryKeyRelatedField):
    """DRF's, except that an integer key outside a signed BIGINT is "object does not exist"
    before any query."""

    def to_internal_value(self, data):
        if self.pk_field is None and not isinstance(data, bool) and out_of_id_range(data):
            pk = self.get_queryset().model._meta.pk
            if isinstance(getattr(pk, "target_field", pk), models.IntegerField):
                self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


class ModelSerializer(serializers.ModelSerializer):
    """The base of every app's model serializers (foreign keys: the field above)."""

    serializer_related_field = PrimaryKeyRelatedField
