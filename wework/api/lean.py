"""A lean path for the rows of a list page (issue 13: the users list spent 36 % of its time in
DRF's serializer).

DRF serializes each row field by field: `_readable_fields`, `field.get_attribute()` (a walk of
`source_attrs`, a `PKOnlyObject` for a foreign key), a check for None, then
`field.to_representation()`: about 15 Python calls per cell, 850 cells on a page of 50 users.
`LeanListSerializer` plans each field once per page and reads the cells that need nothing
more directly:

* a model column whose serializer field gives back the value it gets (`CharField` of a str,
  `IntegerField` of an int, `BooleanField` of a bool, ...): the attribute, as is;
* a choice whose value DRF gives back unchanged (an int or str among the choices);
* a foreign key shown as its id (`PrimaryKeyRelatedField`, no `pk_field`): the `*_id` attribute;
* a JSON column (`JSONField`, not `binary`): the decoded attribute, as DRF gives it back;
* an aware datetime shown as ISO 8601 (`DateTimeField`'s default): `astimezone(<the field's
  time zone>).isoformat()`, "+00:00" written "Z", as `DateTimeField.to_representation` does;
* a method field: the serializer's `get_<name>(row)`;
* every other field (choices, dates, nested fields, sources with dots): DRF's own
  `get_attribute()` and `to_representation()`, exactly as `Serializer.to_representation` does.

The plan (which field takes which path) is built from the page's serializer, and kept for its
class when no field depends on the request (CONTEXT_FREE): DRF otherwise builds every field of
a ModelSerializer again for each page.

The output is the same, key for key and value for value (wework/tests/test_api_lean.py
compares it with DRF's on every API list). A serializer that overrides `to_representation`,
a list serializer of its own, or rows that are dicts keep DRF's path.
"""
from __future__ import annotations

from datetime import datetime

from rest_framework import fields as f
from rest_framework import relations, serializers
from rest_framework.fields import SkipField
from rest_framework.settings import api_settings

from wework.api.serializers import PrimaryKeyRelatedField

#: DRF's foreign key field and the platform's (wework.api.serializers: the same output, a
#: checked input).
PK_RELATED = (relations.PrimaryKeyRelatedField, PrimaryKeyRelatedField)
#: Serializer field classes (exactly these) and the Python type whose values they give back
#: unchanged (`CharField.to_representation` is `str(value)`, `IntegerField`'s `int(value)`...).
IDENTITY = {
    f.CharField: str, f.EmailField: str, f.SlugField: str, f.URLField: str, f.IPAddressField: str,
    f.IntegerField: int, f.BooleanField: bool, f.FloatField: float,
}
_DIRECT, _FK, _DRF, _DATETIME, _METHOD, _CHOICE, _JSON = 0, 1, 2, 3, 4, 5, 6
#: Fields whose value depends on the row alone (not on the request's context): a plan made of
#: these is kept for the serializer class (_cached_plan).
CONTEXT_FREE = (*IDENTITY, f.BigIntegerField, f.ChoiceField, f.DateTimeField, f.DateField, f.TimeField, f.DecimalField,
                f.JSONField, f.ReadOnlyField, f.UUIDField, f.DictField, f.ListField,
                *PK_RELATED, relations.SlugRelatedField,
                f.SerializerMethodField)


def _context_free(field):
    if type(field) is relations.ManyRelatedField:
        return type(field.child_relation) in CONTEXT_FREE
    return type(field) in CONTEXT_FREE


def _iso_timezone(field):
    """The time zone a DateTimeField shows its values in, when it shows them as ISO 8601 (the
    default), else None (then DRF's own to_representation)."""
    output = getattr(field, "format", api_settings.DATETIME_FORMAT)
    if not isinstance(output, str) or output.lower() != f.ISO_8601:
        return None
    return field.timezone if hasattr(field, "timezone") else field.default_timezone()


def _plan(child):
    model = getattr(getattr(child, "Meta", None), "model", None)
    columns = {field.name: field.attname for field in model._meta.concrete_fields} if model else {}
    plan = []
    for field in child._readable_fields:
        source = field.source_attrs
        name = source[0] if len(source) == 1 else None
        kind = _DRF
        wanted = IDENTITY.get(type(field))
        if type(field) is f.BigIntegerField and not getattr(
                field, "coerce_to_string", api_settings.COERCE_BIGINT_TO_STRING):
            wanted = int
        if type(field) is f.SerializerMethodField:
            kind, name = _METHOD, field.method_name
        elif name in columns:
            if wanted is not None and columns[name] == name:
                kind = _DIRECT
            elif (type(field) in PK_RELATED and field.pk_field is None
                  and columns[name] != name):
                kind, name = _FK, columns[name]
            elif type(field) is f.ChoiceField and columns[name] == name:
                # the choices DRF gives back unchanged (choice_strings_to_values[str(v)] is v)
                kind, wanted = _CHOICE, frozenset(
                    v for text, v in field.choice_strings_to_values.items() if type(v) in (int, str) and str(v) == text)
            elif type(field) is f.JSONField and not field.binary and columns[name] == name:
                kind = _JSON  # JSONField.to_representation gives a non-binary value back as is
            elif type(field) is f.DateTimeField and columns[name] == name:
                wanted = _iso_timezone(field)
                kind = _DATETIME if wanted is not None else _DRF
        plan.append((field.field_name, kind, name, wanted, field))
    return plan


def _row(instance, plan, child):
    out = {}
    for key, kind, name, wanted, field in plan:
        if kind == _METHOD:  # on this page's serializer: its context
            out[key] = getattr(child, name)(instance)
            continue
        if kind == _FK or kind == _JSON:
            out[key] = getattr(instance, name)
            continue
        if kind == _DIRECT:
            value = getattr(instance, name)
            if value is None or type(value) is wanted:
                out[key] = value
                continue
        elif kind == _CHOICE:
            value = getattr(instance, name)
            if value is None or (type(value) in (int, str) and value in wanted):
                out[key] = value
                continue
        elif kind == _DATETIME:
            value = getattr(instance, name)
            if value is None:
                out[key] = None
                continue
            if type(value) is datetime and value.tzinfo is not None:
                text = value.astimezone(wanted).isoformat()
                out[key] = text[:-6] + "Z" if text.endswith("+00:00") else text
                continue
        try:
            attribute = field.get_attribute(instance)
        except SkipField:
            continue
        check = attribute.pk if isinstance(attribute, relations.PKOnlyObject) else attribute
        out[key] = None if check is None else field.to_representation(attribute)
    return out


#: Plans that depend on nothing but their serializer class (and the time zone): see _cached_plan.
_PLANS: dict = {}
_STATIC = ("get_fields", "get_field_names", "build_field", "build_standard_field",
           "build_relational_field", "get_extra_kwargs", "include_extra_kwargs", "__init__", "fields")


def _cached_plan(child):
    """The plan of `child`, built once per serializer class and time zone when every field's
    value depends on its row alone (CONTEXT_FREE; a method field is called on this page's
    serializer) and the class builds its fields as ModelSerializer does; else built for this
    page (`child.fields`)."""
    from django.utils import timezone

    cls = type(child)
    key = (cls, str(timezone.get_current_timezone()))
    plan = _PLANS.get(key)
    if plan is None:
        plan = _plan(child)
        static = (all(getattr(cls, name) is getattr(serializers.ModelSerializer, name) for name in _STATIC)
                  and all(_context_free(field) for *_rest, field in plan))
        if static and len(_PLANS) < 1000:
            _PLANS[key] = plan
    return plan


class LeanListSerializer(serializers.ListSerializer):
    """ListSerializer whose rows take the lean path when their serializer allows it."""

    def to_representation(self, data):
        child = self.child
        rows = data.all() if hasattr(data, "all") else data
        if (type(child).to_representation is not serializers.Serializer.to_representation
                or not isinstance(child, serializers.ModelSerializer)):
            return super().to_representation(data)
        rows = list(rows)
        if not rows:
            return []
        if isinstance(rows[0], dict):
            return super().to_representation(rows)
        plan = _cached_plan(child)
        return [_row(item, plan, child) for item in rows]


class LeanListMixin:
    """Viewsets: a page of rows (`get_serializer(..., many=True)`) is serialized by
    LeanListSerializer unless the serializer names a list serializer of its own."""

    def get_serializer(self, *args, **kwargs):
        serializer = super().get_serializer(*args, **kwargs)
        if type(serializer) is serializers.ListSerializer:
            serializer.__class__ = LeanListSerializer
        return serializer
