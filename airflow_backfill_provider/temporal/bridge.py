"""Blocking calls into async SDK code on one private event loop thread per process; bounded fan-out.

The SDK's client belongs to the loop it was created on, so every blocking call of a process runs
on the same loop, and a hook's gRPC connection is made once and reused across calls.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
X = TypeVar("X")

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_LOOP_THREAD = "temporal-hook-loop"


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the process's private loop thread and wait for it."""
    global _loop, _loop_pid
    with _loop_lock:
        # A forked child (task runners fork) inherits the loop object but not its thread.
        if _loop is None or _loop.is_closed() or _loop_pid != os.getpid():
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name=_LOOP_THREAD, daemon=True).start()
        loop = _loop
    if threading.current_thread().name == _LOOP_THREAD:
        coro.close()
        raise RuntimeError("A blocking TemporalHook method was called from async code: await its a* form.")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def blocking(afn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """The synchronous twin of a coroutine method ``a<name>``, named ``<name>``.

    It calls the owner's ``_sync(coro_fn)``, which prepares what must happen in the calling
    thread (the hook resolves its Airflow connection there) and then runs the coroutine here.
    """

    @functools.wraps(afn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        return self._sync(lambda: afn(self, *args, **kwargs))

    wrapper.__name__ = wrapper.__qualname__ = afn.__name__[1:]
    wrapper.__doc__ = f"Blocking form of :meth:`{afn.__name__}`." + (
        f"\n\n{afn.__doc__}" if afn.__doc__ else ""
    )
    return wrapper


async def gather_bounded(fn: Callable[[X], Awaitable[T]], items: Iterable[X], limit: int) -> list[T]:
    """``fn`` over ``items``, at most ``limit`` calls at a time, results in order."""
    sem = asyncio.Semaphore(limit)

    async def one(item: X) -> T:
        async with sem:
            return await fn(item)

    return list(await asyncio.gather(*(one(i) for i in items)))
