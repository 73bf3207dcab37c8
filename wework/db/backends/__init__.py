"""The MySQL/MariaDB and SQLite backends, unchanged except for one thing: when the modules are
on more than one database (wework.db.layout), the schema editor does not create a FOREIGN KEY
from a table to a table of a module on another alias. Such a reference is constraint-free: the
column and its key stay, the services check that the referenced row exists before writing
(docs/schema.md, "Storage layout"). The settings use these backends only in a split layout.
"""
from contextlib import contextmanager


def crosses_databases(model, field):
    from wework.db.layout import alias_for_app

    remote = getattr(field, "remote_field", None)
    if remote is None or not getattr(field, "db_constraint", False):
        return False
    target = remote.model
    if isinstance(target, str):  # unresolved in a migration state: "app.Model"
        target_label = target.split(".")[0]
    else:
        target_label = target._meta.app_label
    return alias_for_app(model._meta.app_label) != alias_for_app(target_label)


@contextmanager
def _unconstrained(model, fields):
    changed = [f for f in fields if f is not None and crosses_databases(model, f)]
    for field in changed:
        field.db_constraint = False
    try:
        yield
    finally:
        for field in changed:
            field.db_constraint = True


class CrossDatabaseSchemaMixin:
    """Leaves out foreign keys whose target is on another alias (create, add, alter)."""

    def create_model(self, model):
        with _unconstrained(model, model._meta.local_fields):
            super().create_model(model)

    def add_field(self, model, field):
        with _unconstrained(model, [field]):
            super().add_field(model, field)

    def alter_field(self, model, old_field, new_field, strict=False):
        with _unconstrained(model, [old_field, new_field]):
            super().alter_field(model, old_field, new_field, strict=strict)

    def _remake_table(self, model, create_field=None, delete_field=None, alter_fields=None):  # SQLite
        fields = list(model._meta.local_fields) + [create_field] + [f for pair in (alter_fields or []) for f in pair]
        with _unconstrained(model, fields):
            super()._remake_table(model, create_field=create_field, delete_field=delete_field,
                                  alter_fields=alter_fields)
