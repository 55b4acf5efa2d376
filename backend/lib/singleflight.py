"""One request does the work, the identical ones arriving meanwhile wait for its outcome (across processes).

When hundreds of customers ask for the same thing at the same moment (the same demo car at the same start on a
launch day), only one of them can win, and every loser would otherwise queue in PostgreSQL for the same locks
and rows only to be refused. With a flight, the first request to :meth:`Flights.join` a key becomes its
*leader* (a Redis ``SET NX`` claim with a time to live) and goes on as usual; the others wait, holding no
database connection, for the outcome the leader :meth:`Flights.land`\\ s (a Redis publish), and answer from it.

The database still decides: the outcome is only what the leader's committed transaction proved (for a booking:
"this car is booked at this start"), which is true for every request waiting on the same key. Whatever goes
wrong falls back to the ordinary path: a leader that fails lands a failure (the waiters then go on
themselves), a leader that dies leaves a claim that expires, a waiter that hears nothing in ``wait_seconds``
goes on itself, and a process whose subscription is down joins no flight at all until it has subscribed again.

One subscriber per process (a pattern subscription) wakes the waiters; channel names carry the Redis database
number, since publish/subscribe is shared by every database of a server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass

from prometheus_client import Counter
from redis.asyncio import Redis

log = logging.getLogger("forecourt.singleflight")
JOINS = Counter("forecourt_single_flight_joins", "Requests that joined a single flight, by what became of them: "
                "led it, were answered from its outcome, or went on by themselves", ["namespace", "result"])

# Release the claim only if it is still ours, and tell whoever waits (on any process) in the same step, so a
# request either sees the claim (and then hears the outcome) or finds the key free.
_LAND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('PUBLISH', ARGV[2], ARGV[3])
"""


@dataclass(frozen=True)
class Leader:
    """This request claimed the key: do the work, then :meth:`Flights.land` with ``token``."""

    key: str
    token: str


@dataclass(frozen=True)
class Landed:
    """The leader's outcome (``None`` when it failed: go on as if no flight had been)."""

    outcome: dict | None


GO_ON = Landed(None)


class Flights:
    def __init__(self, redis: Redis, namespace: str, *, claim_seconds: float = 10.0, wait_seconds: float = 5.0,
                 retry_seconds: float = 1.0):
        db = redis.connection_pool.connection_kwargs.get("db", 0)
        self.redis = redis
        self.namespace = namespace
        self.keys = f"{namespace}:flight:"
        self.channels = f"{namespace}:flight:{db}:"
        self.claim_ms = int(claim_seconds * 1000)
        self.wait_seconds = wait_seconds
        self.retry_seconds = retry_seconds
        self._waiting: dict[str, list[asyncio.Future]] = {}
        self._pubsub = None
        self._subscribed = False
        self._reader: asyncio.Task | None = None
        self._land = redis.register_script(_LAND)

    @property
    def listening(self) -> bool:
        return self._subscribed and self._reader is not None and not self._reader.done()

    async def start(self) -> None:
        """Subscribe (raises when Redis cannot be reached), then listen; a lost subscription is renewed."""
        await self._subscribe()
        self._reader = asyncio.create_task(self._run(), name="singleflight-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        await self._unsubscribe()
        self._let_everyone_go()

    async def _subscribe(self) -> None:
        await self._unsubscribe()
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.psubscribe(self.channels + "*")
        self._subscribed = True

    async def _unsubscribe(self) -> None:
        self._subscribed = False
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            try:
                await pubsub.aclose()
            except Exception:  # noqa: BLE001 - it is being thrown away anyway
                log.debug("closing a lost single-flight subscription failed", exc_info=True)

    def _let_everyone_go(self) -> None:
        for waiters in self._waiting.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)
        self._waiting.clear()

    async def _run(self) -> None:
        while True:
            try:
                async for message in self._pubsub.listen():
                    if message.get("type") == "pmessage":
                        self._wake(message["channel"], message["data"])
                raise ConnectionError("the subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis went away: everyone takes the ordinary path meanwhile
                log.warning("the single-flight subscription was lost; requests go on alone until it is back",
                            exc_info=True)
                self._subscribed = False
                self._let_everyone_go()
            while not self._subscribed:
                await asyncio.sleep(self.retry_seconds)
                try:
                    await self._subscribe()
                except Exception:  # noqa: BLE001 - still away: try again later
                    self._subscribed = False

    def _wake(self, channel: str | bytes, data: str) -> None:
        key = (channel.decode() if isinstance(channel, bytes) else channel)[len(self.channels):]
        for future in self._waiting.pop(key, ()):
            if not future.done():
                future.set_result(data)

    async def join(self, key: str) -> Leader | Landed:
        """Lead the flight of ``key``, or wait for its leader's outcome (:data:`GO_ON` when there is none)."""
        joined = await self._join(key)
        result = "led" if isinstance(joined, Leader) else "answered" if joined.outcome is not None else "went_on"
        JOINS.labels(self.namespace, result).inc()
        return joined

    async def _join(self, key: str) -> Leader | Landed:
        if not self.listening:
            return GO_ON
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)  # before the claim: no outcome can slip past
        token = secrets.token_hex(8)
        try:
            if await self.redis.set(self.keys + key, token, nx=True, px=self.claim_ms):
                return Leader(key, token)
            data = await asyncio.wait_for(future, self.wait_seconds)
            return Landed(json.loads(data)) if data else GO_ON
        except (TimeoutError, ValueError):
            return GO_ON
        except Exception:  # noqa: BLE001 - Redis trouble: the ordinary path still works
            log.warning("could not join the flight of %s", key, exc_info=True)
            return GO_ON
        finally:
            waiters = self._waiting.get(key)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiting[key]

    async def land(self, leader: Leader, outcome: dict | None) -> None:
        """Release the claim and tell the waiters: ``outcome`` (JSON-able) when the work succeeded and what it
        proved holds for every request of the key, ``None`` when the waiters must each go on themselves."""
        try:
            await self._land(keys=[self.keys + leader.key],
                             args=[leader.token, self.channels + leader.key, json.dumps(outcome) if outcome else ""])
        except Exception:  # noqa: BLE001 - the claim expires and the waiters time out: slower, still correct
            log.warning("could not land the flight of %s", leader.key, exc_info=True)
