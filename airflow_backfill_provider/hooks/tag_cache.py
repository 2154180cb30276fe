"""The sync's tag list, cached in Redis through the redis provider's ``RedisHook``.

Discovery asks TagRef for every tag of the selected types; a plant's tag list changes rarely, and
asking once an hour instead of once a minute spares the historian. When Redis cannot be reached the
sync is not held up: the list is read from TagRef, and one warning per run says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

log = logging.getLogger(__name__)

HIT, MISS, OFF, UNAVAILABLE = "hit", "miss", "off", "unavailable"


@dataclass(frozen=True)
class CachedTags:
    """The tag list and where it came from: ``hit`` (Redis), ``miss`` (TagRef, now cached), ``off``
    (no cache configured) or ``unavailable`` (Redis unreachable: TagRef, not cached)."""

    tags: list[str]
    cache: str


class TagCache:
    """A JSON list of tag names under ``key`` in Redis, expiring after ``ttl``.

    :param ttl: None turns the cache off (every call reads TagRef, no Redis connection is made).
    """

    def __init__(self, redis_conn_id: str, key: str, ttl: timedelta | None) -> None:
        self.redis_conn_id = redis_conn_id
        self.key = key
        self.ttl = ttl

    def _client(self):
        from airflow.providers.redis.hooks.redis import RedisHook

        return RedisHook(redis_conn_id=self.redis_conn_id).get_conn()

    def get(self, load: Callable[[], list[str]]) -> CachedTags:
        """The cached list, or ``load()``'s (then cached); Redis errors fall back to ``load()``."""
        if self.ttl is None:
            return CachedTags(load(), OFF)
        try:
            client = self._client()
            raw = client.get(self.key)
        except Exception as err:  # unreachable, refused, no such connection: go on without it
            log.warning(
                "Tag cache: Redis (connection %r) is unavailable (%s: %s); reading the tags from "
                "TagRef, uncached, this run.",
                self.redis_conn_id,
                type(err).__name__,
                err,
            )
            return CachedTags(load(), UNAVAILABLE)
        if raw is not None:
            tags = json.loads(raw)
            log.info("Tag cache hit: %d tags from Redis key %r", len(tags), self.key)
            return CachedTags(tags, HIT)
        tags = load()
        try:
            client.set(self.key, json.dumps(tags), ex=max(1, int(self.ttl.total_seconds())))
        except Exception as err:
            log.warning(
                "Tag cache: could not store the tag list in Redis (connection %r: %s: %s); the next "
                "run reads TagRef again.",
                self.redis_conn_id,
                type(err).__name__,
                err,
            )
            return CachedTags(tags, UNAVAILABLE)
        log.info("Tag cache miss: %d tags from TagRef, cached for %s under %r", len(tags), self.ttl, self.key)
        return CachedTags(tags, MISS)
