"""The Android gateway's phones as one pool: who is live, whose turn it is, what is in doubt.

Every worker process sends through the same phones, so what they must agree on is shared:
- Health in the database (`android_phones`): a phone whose sends fail `max_failures` times
  in a row (refused connections, timeouts, 5xx, wrong credentials) is taken out of the pool,
  with the time and the last error; it is asked again (`GET /health`, or the cloud's device
  list) every `probe_seconds` and put back when it answers. The dashboard, /readyz and
  /metrics read the same rows.
- Turns: the live phone used longest ago that still has pace budget (round robin across
  workers: `last_used_at`).
- Pace in the `limits` library's moving window, in Redis when REDIS_URL is set (as the
  broadcasts' pacer, bot/broadcasts/pacing.py), else in a file every process of the machine
  shares (bot/db/pace_store.py: `bot run` starts two workers).
- Handoffs (`android_handoffs`): a row per message handed to a phone, by the id we gave it,
  written before the call ("handing"). A call that ends without an answer leaves it in
  "doubt" (the phone may have taken the message, then stopped answering), and so does a
  worker that died mid-call (a "handing" row older than any call lasts): the message is
  not given to another phone until that phone answers `GET /message/{id}` (found: the
  message is adopted, not sent again; 404: it never took it, so another phone may).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.strategies import MovingWindowRateLimiter
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from bot.channels.android.settings import AndroidGateway, AndroidPhone
from bot.db.database import Database
from bot.db.models import AndroidHandoff, AndroidPhoneState, utcnow
from bot.db.pace_store import pace_storage

MAX_COST = 10  # segments of the longest message the pace window must hold
KEEP_HANDOFFS = timedelta(days=2)  # settled handoffs are kept this long (for the doubts)
HANDING, DOUBT, ACCEPTED, REFUSED = "handing", "doubt", "accepted", "refused"
# A handoff still "handing" after this long was not being handed by a live call (each call
# gives up within the send timeout): its worker died mid-call, so it is in doubt too.
IN_FLIGHT = timedelta(seconds=60)


@dataclass(frozen=True)
class PhoneView:
    """A phone's state as the dashboard, /readyz and /metrics show it."""

    name: str
    live: bool
    failures: int
    sent: int
    last_error: str | None
    out_since: datetime | None
    last_ok_at: datetime | None


class Pool:
    """The shared state of the pool's phones (see the module's docstring)."""

    def __init__(
        self,
        gateway: AndroidGateway,
        db: Database,
        key: bytes,
        redis_url: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        var_dir: Path | None = None,
    ) -> None:
        self.gateway = gateway
        self.phones = {p.name: p for p in gateway.phones}
        self.db = db
        self._key = key
        self.clock = clock
        self._limiter = MovingWindowRateLimiter(pace_storage(redis_url, var_dir))
        window = max(1, math.ceil(MAX_COST / gateway.pace_per_minute))
        self._item: RateLimitItem = RateLimitItemPerMinute(
            max(1, round(gateway.pace_per_minute * window)), window
        )
        self._known = False

    # -- health ---------------------------------------------------------------------------

    def _ensure_rows(self) -> None:
        if self._known:
            return
        try:
            with self.db.write() as session:
                have = set(session.scalars(select(AndroidPhoneState.name)))
                for name in self.phones:
                    if name not in have:
                        session.add(
                            AndroidPhoneState(
                                name=name, live=True, failures=0, sent=0, updated_at=self.clock()
                            )
                        )
        except IntegrityError:
            pass  # another worker (or thread) wrote the same rows at the same moment
        self._known = True

    def live_order(self) -> list[AndroidPhone]:
        """Live phones, the one used longest ago first (then the one that sent fewest)."""
        self._ensure_rows()
        with self.db.read() as session:
            rows = session.execute(
                select(
                    AndroidPhoneState.name, AndroidPhoneState.last_used_at, AndroidPhoneState.sent
                ).where(AndroidPhoneState.live.is_(True))
            ).all()
        floor = datetime.min.replace(tzinfo=self.clock().tzinfo)
        ordered = sorted(rows, key=lambda r: (r.last_used_at or floor, r.sent, r.name))
        return [self.phones[r.name] for r in ordered if r.name in self.phones]

    def due_probes(self) -> list[AndroidPhone]:
        """Phones out of the pool whose next probe is due; each is pushed back one period
        (so that one worker probes it, not all)."""
        self._ensure_rows()
        now = self.clock()
        later = now + timedelta(seconds=self.gateway.probe_seconds)
        due: list[AndroidPhone] = []
        with self.db.write() as session:
            names = session.scalars(
                select(AndroidPhoneState.name)
                .where(AndroidPhoneState.live.is_(False))
                .where(AndroidPhoneState.next_probe_at <= now)
            ).all()
            for name in names:
                taken = session.execute(
                    update(AndroidPhoneState)
                    .where(AndroidPhoneState.name == name, AndroidPhoneState.live.is_(False))
                    .where(AndroidPhoneState.next_probe_at <= now)
                    .values(next_probe_at=later)
                )
                if taken.rowcount == 1 and name in self.phones:  # type: ignore[attr-defined]
                    due.append(self.phones[name])
        return due

    def succeeded(self, name: str) -> None:
        """A phone took a message (or answered a probe): it is live, its count starts over."""
        now = self.clock()
        with self.db.write() as session:
            session.execute(
                update(AndroidPhoneState)
                .where(AndroidPhoneState.name == name)
                .values(
                    live=True,
                    failures=0,
                    out_since=None,
                    next_probe_at=None,
                    last_ok_at=now,
                    updated_at=now,
                )
            )

    def used(self, name: str, sent: bool) -> None:
        """A send went to `name` (its turn is over); `sent`: the phone took it."""
        now = self.clock()
        values: dict[str, object] = {"last_used_at": now}
        if sent:
            values["sent"] = AndroidPhoneState.sent + 1
        with self.db.write() as session:
            session.execute(
                update(AndroidPhoneState).where(AndroidPhoneState.name == name).values(**values)
            )

    def failed(self, name: str, error: str) -> bool:
        """Counts a failure the phone caused; True when it has just been taken out."""
        now = self.clock()
        with self.db.write() as session:
            row = session.scalars(
                select(AndroidPhoneState).where(AndroidPhoneState.name == name).with_for_update()
            ).first()
            if row is None:
                return False
            row.failures += 1
            row.last_error = error[:300]
            row.updated_at = now
            if row.live and row.failures >= self.gateway.max_failures:
                row.live = False
                row.out_since = now
                row.next_probe_at = now + timedelta(seconds=self.gateway.probe_seconds)
                return True
            if not row.live:
                row.next_probe_at = now + timedelta(seconds=self.gateway.probe_seconds)
            return False

    def views(self) -> list[PhoneView]:
        """Every configured phone's state, in name order."""
        self._ensure_rows()
        with self.db.read() as session:
            rows = {r.name: r for r in session.scalars(select(AndroidPhoneState))}
        return [
            PhoneView(
                name,
                rows[name].live,
                rows[name].failures,
                rows[name].sent,
                rows[name].last_error,
                rows[name].out_since,
                rows[name].last_ok_at,
            )
            for name in sorted(self.phones)
            if name in rows
        ]

    def summary(self) -> str:
        """One line: "ok (2 of 2 phones live)", or which phones are out and why."""
        views = self.views()
        live = [v for v in views if v.live]
        head = f"{len(live)} of {len(views)} phones live"
        out = [v for v in views if not v.live]
        if not out:
            return f"ok ({head})"
        detail = "; ".join(
            f"{v.name} out since {v.out_since:%Y-%m-%d %H:%M} UTC: {v.last_error or '?'}"
            if v.out_since
            else f"{v.name} out"
            for v in out
        )
        return f"{'degraded' if live else 'down'} ({head}; {detail})"

    def panel(self) -> tuple[str, tuple[str, ...], list[tuple[str, ...]]]:
        """The dashboard's "Phones" table: (title, column headers, one row per phone)."""
        rows: list[tuple[str, ...]] = [
            (
                v.name,
                "in the pool"
                if v.live
                else f"out since {v.out_since:%Y-%m-%d %H:%M} UTC"
                if v.out_since
                else "out",
                str(v.failures),
                str(v.sent),
                f"{v.last_ok_at:%Y-%m-%d %H:%M} UTC" if v.last_ok_at else "never",
                v.last_error or "",
            )
            for v in self.views()
        ]
        headers: tuple[str, ...] = (
            "Phone",
            "State",
            "Failures in a row",
            "Sent",
            "Last success",
            "Last error",
        )
        return "Android gateway phones", headers, rows

    # -- pace -----------------------------------------------------------------------------

    def take_turn(self, name: str, cost: int) -> bool:
        """Spends `cost` segments of the phone's pace budget if it has them."""
        cost = max(1, min(cost, self._item.amount))
        return bool(self._limiter.hit(self._item, "android-pace", name, cost=cost))

    def wait_for(self, name: str) -> float:
        """Seconds until the phone's pace window frees some budget."""
        stats = self._limiter.get_window_stats(self._item, "android-pace", name)
        return max(0.05, stats.reset_time - time.time())

    # -- handoffs -------------------------------------------------------------------------

    def digest(self, to: str, body: str) -> str:
        """A keyed hash of recipient and text (no phone number is stored in the table)."""
        raw = f"{to}\x1f{body}".encode()
        return hmac.new(self._key, raw, hashlib.sha256).hexdigest()

    def handing(self, gateway_id: str, phone: str, digest: str) -> None:
        """Writes down, before the call, that `gateway_id` is being handed to `phone`."""
        now = self.clock()
        with self.db.write() as session:
            session.execute(
                delete(AndroidHandoff)
                .where(AndroidHandoff.created_at < now - KEEP_HANDOFFS)
                .where(AndroidHandoff.state.in_((ACCEPTED, REFUSED)))
            )
            session.add(
                AndroidHandoff(
                    gateway_id=gateway_id, phone=phone, digest=digest, state=HANDING, created_at=now
                )
            )

    def settle(self, gateway_id: str, state: str) -> bool:
        """Marks a handoff in doubt, accepted or refused; False if it was settled already
        (another worker adopted it, say)."""
        unsettled = (HANDING,) if state == DOUBT else (HANDING, DOUBT)
        with self.db.write() as session:
            result = session.execute(
                update(AndroidHandoff)
                .where(AndroidHandoff.gateway_id == gateway_id)
                .where(AndroidHandoff.state.in_(unsettled))
                .values(state=state)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def doubts(self, digest: str) -> list[tuple[str, str]]:
        """(gateway id, phone) of handoffs of this recipient and text in doubt: a call that
        ended without an answer, or one whose worker died (not calls under way now)."""
        now = self.clock()
        with self.db.read() as session:
            return [
                (r.gateway_id, r.phone)
                for r in session.execute(
                    select(AndroidHandoff.gateway_id, AndroidHandoff.phone)
                    .where(AndroidHandoff.digest == digest)
                    .where(
                        (AndroidHandoff.state == DOUBT)
                        | (
                            (AndroidHandoff.state == HANDING)
                            & (AndroidHandoff.created_at < now - IN_FLIGHT)
                        )
                    )
                    .where(AndroidHandoff.created_at >= now - KEEP_HANDOFFS)
                    .order_by(AndroidHandoff.created_at)
                )
            ]


class PoolCollector:
    """The pool on /metrics: `bot_android_phone_live{phone}` (1 in the pool, 0 out) and
    `bot_android_phone_sent{phone}` (messages it took since it was first configured), read
    from the shared table at each scrape (every process sees the same)."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        """The two gauges, one sample per configured phone."""
        live = GaugeMetricFamily(
            "bot_android_phone_live",
            "Android gateway phone in the pool (1) or out (0)",
            labels=["phone"],
        )
        sent = GaugeMetricFamily(
            "bot_android_phone_sent", "Messages the Android gateway phone took", labels=["phone"]
        )
        for view in self.pool.views():
            live.add_metric([view.name], 1.0 if view.live else 0.0)
            sent.add_metric([view.name], float(view.sent))
        yield live
        yield sent
