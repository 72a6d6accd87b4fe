"""Job updates, fanned out from the threads that change jobs to the Server-Sent-Event streams.

Workers publish from their own threads; each stream is a :class:`Subscription` living on the server's
event loop, handed updates with ``call_soon_threadsafe``. A client that keeps up sees every update; for one
that falls behind, the backlog is compacted to the latest update of each job, so it sees fewer, newer
updates instead of a growing backlog, and never misses a job's final state.
"""

from __future__ import annotations

import asyncio
import json
import threading


class Subscription:
    """Updates of one job (``job_id``) or of every job (``job_id=None``), for one stream."""

    #: Updates held for a slow client before its backlog is compacted.
    backlog = 256

    def __init__(self, job_id: str | None, loop: asyncio.AbstractEventLoop):
        self.job_id = job_id
        self.loop = loop
        self._pending: list[dict] = []
        self._ready = asyncio.Event()

    def wants(self, job_id: str) -> bool:
        return self.job_id is None or self.job_id == job_id

    def offer(self, update: dict) -> None:
        """Runs on the event loop."""
        self._pending.append(update)
        if len(self._pending) > self.backlog:
            latest = {u["id"]: u for u in self._pending}  # the last update of each job
            self._pending = list(latest.values())
        self._ready.set()

    async def next(self, timeout: float) -> list[dict]:
        """The updates since the last call, waiting up to ``timeout`` seconds for one ([] on timeout)."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return []
        self._ready.clear()
        updates, self._pending = self._pending, []
        return updates


class JobEvents:
    """The hub: streams subscribe on the event loop, any thread publishes."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()

    def subscribe(self, job_id: str | None = None) -> Subscription:
        """Call from the event loop (an async route)."""
        subscription = Subscription(job_id, asyncio.get_running_loop())
        with self._lock:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def publish(self, update: dict) -> None:
        """Send a job's JSON view (a dict with ``id``) to the streams that follow it; safe from any thread."""
        with self._lock:
            targets = [s for s in self._subscriptions if s.wants(update["id"])]
        for subscription in targets:
            try:
                subscription.loop.call_soon_threadsafe(subscription.offer, update)
            except RuntimeError:  # the loop has closed: the server is stopping
                self.unsubscribe(subscription)


def sse(event: str, data: dict) -> str:
    """One Server-Sent Event."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


__all__ = ["JobEvents", "Subscription", "sse"]
