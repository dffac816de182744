"""The job queue: Huey on SQLite (embedded default), on Redis (REDIS_URL), or immediate (tests).

The queue only says "look at this contact / this message": the rows in the database are the
truth, so a task lost with a crashed worker is found again by the sweeper (bot/runtime.py).
"""

from __future__ import annotations

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey

from bot.settings import Settings


def make_huey(settings: Settings, immediate: bool = False) -> Huey:
    """The Huey instance for these settings."""
    if immediate:
        return MemoryHuey("bot", immediate=True, results=False, utc=True)
    if settings.redis_url:
        return RedisHuey("bot", url=settings.redis_url, results=False, utc=True)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("bot", filename=str(settings.queue_path), results=False, utc=True)
