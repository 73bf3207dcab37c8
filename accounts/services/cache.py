"""Cache generations of resolved permissions (accounts.backends caches them per user).

Any change to roles, their permissions or the permissions table bumps the global generation;
a change to one user's grants deletes that user's entry.
"""
from django.core.cache import cache
from django.utils import timezone

GENERATION_KEY = "acl:generation"


def generation() -> int:
    value = cache.get(GENERATION_KEY)
    if value is None:
        value = int(timezone.now().timestamp() * 1000)
        cache.add(GENERATION_KEY, value, None)
        value = cache.get(GENERATION_KEY, value)
    return value


def bump_generation() -> None:
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:
        cache.set(GENERATION_KEY, int(timezone.now().timestamp() * 1000) + 1, None)


def user_cache_key(user_id: int) -> str:
    return f"acl:user:v2:{user_id}"  # bump the version when the cached tuple changes


def forget_user(user_id: int) -> None:
    cache.delete(user_cache_key(user_id))
