"""django.db.backends.sqlite3 with cross-database foreign keys left out (wework.db.backends)."""
from django.db.backends.sqlite3 import base
from django.db.backends.sqlite3.schema import DatabaseSchemaEditor as _Editor

from wework.db.backends import CrossDatabaseSchemaMixin


class DatabaseSchemaEditor(CrossDatabaseSchemaMixin, _Editor):
    pass


class DatabaseWrapper(base.DatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor
