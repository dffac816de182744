"""Broadcast benchmark: plan 100,000 recipients, hold the pace, and send unpaced.

1. **Plan**: seeds N contacts (SQLite by default, or DATABASE_URL) and plans a broadcast to
   all of them in this process: wall time and peak memory growth of fan-out.
2. **Pace**: a real `bot worker` sends that run with BROADCAST_PACE=sms=<pace> against the
   fake Twilio API (answering after --api-delay, 0.2 s): segments handed to the API per
   second over --pace-seconds, against the configured pace.
3. **Unpaced**: a second broadcast to everyone with pacing off: messages handed to the API
   per second.

Loopback only; every phase has a time limit.

    .venv/bin/python -m bench.broadcast_load                 # 100,000 recipients, pace 50/s
    .venv/bin/python -m bench.broadcast_load --contacts 20000 --pace-seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from bot.processes import spawn_bot, stop
from testkit.servers import FakeProcess

ROOT = Path(__file__).resolve().parent.parent
SMS_FROM = "+15005550006"
ENGLISH = "Vaccination camp at the ward school on Sunday 10am. Bring all children under 5."
NEPALI = "आइतबार बिहान १० बजे वडाको विद्यालयमा खोप शिविर। पाँच वर्षमुनिका सबै बालबालिका ल्याउनुहोस्।"


def status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"{field}:\s+(\d+)", text)
    return int(match.group(1)) if match else 0


def fake_count(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_count", timeout=10) as response:
        return int(json.load(response)["sent"])


def fake_received(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/_received", timeout=60) as response:
        return list(json.load(response)["sent"])


def seed(db: Any, count: int) -> None:
    from bot.db.models import Contact, utcnow

    now = utcnow()
    batch = 10_000
    for first in range(0, count, batch):
        rows = [
            {
                "phone": f"+9779{n:09d}",
                "simulated": False,
                "channel": "sms",
                "has_sms": True,
                "has_whatsapp": False,
                "language": "ne" if n % 3 == 0 else "en",
                "opted_out": n % 50 == 0,
                "version": 0,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(first, min(first + batch, count))
        ]
        with db.begin() as conn:
            conn.execute(insert(Contact), rows)


def plan(runtime: Any, title: str) -> tuple[int, float, float, int]:
    """Creates and plans a broadcast to everyone; returns run id, seconds, MB growth, rows."""
    from bot.broadcasts.fanout import plan_run
    from bot.broadcasts.service import Draft, create, start_run
    from bot.db.models import BroadcastRun

    broadcast_id = create(runtime.broadcasts, Draft(title, ENGLISH, NEPALI), created_by="bench")
    runtime.broadcasts.tasks.enqueue_plan = lambda run_id: None
    run_id = start_run(runtime.broadcasts, broadcast_id, runtime.clock())
    assert run_id is not None
    before = status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    queued: list[int] = []
    runtime.broadcasts.tasks.enqueue_send = lambda run_id, **_: queued.append(run_id)
    started = time.perf_counter()
    result = plan_run(runtime.broadcasts, run_id)
    seconds = time.perf_counter() - started
    growth = (status_kib("VmHWM") - before) / 1024
    with runtime.db.read() as session:
        status = session.scalar(select(BroadcastRun.status).where(BroadcastRun.id == run_id))
    assert status == "sending" and queued == [run_id], (status, queued)
    return run_id, seconds, growth, result.planned


def send_phase(
    env: dict[str, str], fake_url: str, run_id: int, seconds: float, start_timeout: float = 60
) -> tuple[list[dict[str, Any]], float]:
    """Runs a worker that sends the run; returns what the API received in the window."""
    from bot.core.segments import count_segments  # noqa: F401 - imported for the caller
    from bot.queue import make_huey
    from bot.runtime import Runtime
    from bot.settings import Settings

    settings = Settings.from_mapping(env)
    enqueuer = Runtime(settings, huey=make_huey(settings))
    base = fake_count(fake_url)
    enqueuer.enqueue_broadcast_send(run_id)
    enqueuer.close()
    worker = spawn_bot(["worker"], env, cwd=ROOT)
    try:
        deadline = time.monotonic() + start_timeout
        while fake_count(fake_url) == base:
            if time.monotonic() > deadline:
                raise RuntimeError("the worker sent nothing")
            time.sleep(0.05)
        window_start = time.time()
        time.sleep(seconds)
        window_end = time.time()
    finally:
        stop([worker], timeout=60)
    received = fake_received(fake_url)[base:]
    inside = [r for r in received if window_start <= r["at"] < window_end]
    return inside, window_end - window_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--pace", type=float, default=50.0, help="SMS segments per second")
    parser.add_argument("--pace-seconds", type=float, default=60.0)
    parser.add_argument("--unpaced-seconds", type=float, default=20.0)
    parser.add_argument("--api-delay", type=float, default=0.2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from bot.core.segments import count_segments
    from bot.db.migrate import upgrade
    from bot.queue import make_huey
    from bot.runtime import Runtime
    from bot.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="bench-broadcast-"))
    fake = FakeProcess("testkit.fake_twilio", "--delay", str(args.api_delay))
    results: dict[str, Any] = {"contacts": args.contacts}
    try:
        fake_url = fake.url
        env = dict(os.environ)
        env.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bot.db'}")
        env.update(
            {
                "VAR_DIR": str(workdir),
                "SECRET_KEY": "bench-secret-key-0123456789",
                "TWILIO_ACCOUNT_SID": "AC" + "b" * 32,
                "TWILIO_AUTH_TOKEN": "bench-token-0123456789",
                "TWILIO_SMS_FROM": SMS_FROM,
                "TWILIO_API_BASE": fake_url,
                "QUIET_HOURS": "off",
                "BROADCAST_PACE": f"sms={args.pace}",
                "LOG_LEVEL": "WARNING",
            }
        )
        upgrade(env["DATABASE_URL"])
        settings = Settings.from_mapping(env)
        runtime = Runtime(settings, huey=make_huey(settings))
        started = time.perf_counter()
        seed(runtime.db, args.contacts)
        print(f"seeded {args.contacts} contacts in {time.perf_counter() - started:.1f} s")

        run_id, seconds, growth, planned = plan(runtime, "paced")
        results["plan"] = {
            "seconds": round(seconds, 1),
            "rss_growth_mb": round(growth, 1),
            "planned": planned,
        }
        print(f"plan: {planned} messages in {seconds:.1f} s, peak memory +{growth:.0f} MB")

        received, window = send_phase(env, fake_url, run_id, args.pace_seconds)
        segments = sum(count_segments(r["body"] or "").segments for r in received)
        rate = segments / window
        results["pace"] = {
            "configured": args.pace,
            "segments_per_second": round(rate, 2),
            "messages": len(received),
            "error_percent": round(100 * (rate - args.pace) / args.pace, 2),
            "seconds": round(window, 1),
        }
        print(
            f"pace: {rate:.2f} segments/s over {window:.0f} s (configured {args.pace}; "
            f"{100 * (rate - args.pace) / args.pace:+.1f}%), {len(received)} messages"
        )
        from bot.broadcasts.service import cancel, list_broadcasts

        for row in list_broadcasts(runtime.broadcasts):
            if row.status == "sending":
                cancel(runtime.broadcasts, row.id)

        unpaced_env = env | {"BROADCAST_PACE": "sms=0"}
        run_id, seconds, growth, planned = plan(runtime, "unpaced")
        received, window = send_phase(unpaced_env, fake_url, run_id, args.unpaced_seconds)
        per_second = len(received) / window
        results["unpaced"] = {
            "messages_per_second": round(per_second, 1),
            "messages": len(received),
            "seconds": round(window, 1),
            "plan_seconds": round(seconds, 1),
        }
        print(f"unpaced: {per_second:.0f} messages/s handed to the API over {window:.0f} s")
        runtime.close()
    finally:
        fake.stop()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
