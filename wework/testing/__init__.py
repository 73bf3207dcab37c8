"""Test support shared by every app's tests (not imported by the product).

* `fixtures`: the pytest plugin registered by the root conftest.py (personas, a verified admin
  client, API clients with tokens, role grants, an injected clock);
* `factories`: finds the factory-boy factory of any model by convention
  (`<app>/tests/factories.py`), so generic tests build rows of every model.

This package sits above every app (it may import any of them); no app imports it, and tests
get its fixtures by name from pytest instead of importing other apps' test modules.
"""
