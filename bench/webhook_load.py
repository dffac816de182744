"""Webhook load benchmark: signed inbound messages at fixed offered rates, on 127.0.0.1 only.

Starts the fake Twilio API (answering every send after --api-delay seconds, 200 ms by
default, as the real API does over the internet), the service (`bot web` + `bot worker` on
the embedded default unless DATABASE_URL / REDIS_URL say otherwise), then for each rate sends
signed webhooks open-loop (on schedule, whatever the answers) from distinct senders, and
measures: acknowledgement latency, errors, and end-to-end time until the reply reaches the
fake Twilio API; plus each process's memory. Bounded: every phase has a time limit.

    .venv/bin/python -m bench.webhook_load --rates 100 200 300 --duration 20
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.processes import Process, spawn_bot, stop, wait_ready
from testkit.load import Account, Planned, at_rate, percentile, send
from testkit.servers import FakeProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token-0123456789"
ACCOUNT = Account(ACCOUNT_SID, AUTH_TOKEN, "+15005550006")
BODIES = [
    "hello",
    "HELP",
    "what is social mobilization?",
    "नमस्ते",
    "samajik parichalan bhaneko k ho",
    "when is the next ward meeting",
    "मद्दत",
    "thank you 🙏",
]


def rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, MiB."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            pids.extend(int(c) for c in children)
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process and its live descendants, seconds."""
    total = 0
    pids = [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while pids:
        current = pids.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            pids.extend(int(c) for c in children)
    return total / tick


def calibrate() -> int:
    """Milliseconds for a fixed CPU-bound workload: compare runs made on different days."""
    start = time.perf_counter()
    digest = b"a" * 64
    for _ in range(300_000):
        digest = hashlib.sha1(digest).digest()  # noqa: S324 - a workload, not security
    sum(range(3_000_000))
    return round((time.perf_counter() - start) * 1000)


@dataclass
class RunResult:
    rate: int
    duration: float
    sent: int
    achieved_rate: float
    errors: int
    ack_p50_ms: float
    ack_p99_ms: float
    ack_max_ms: float
    answered: int
    lost: int
    duplicates: int
    e2e_p50_ms: float
    e2e_p99_ms: float
    web_rss_mib: float
    worker_rss_mib: float
    web_cpu_pct: float
    worker_cpu_pct: float
    harness_cpu_pct: float


@dataclass
class Service:
    """`bot web` and `bot worker` processes started for a benchmark."""

    url: str  # where the webhooks go
    env: dict[str, str]
    web: Process
    workers: list[Process]


def start_service(
    workdir: Path,
    fake_url: str,
    web_workers: int,
    workers: int,
    extra_env: dict[str, str] | None = None,
) -> Service:
    """Migrates a database (DATABASE_URL, or SQLite in `workdir`), starts `bot web` and
    `workers` × `bot worker` sending to the fake Twilio API at `fake_url`, and returns once
    the web process answers."""
    port = free_port()
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bot.db'}")
    env.update(
        {
            "VAR_DIR": str(workdir),
            "SECRET_KEY": "bench-secret-key-0123456789",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_SMS_FROM": "+15005550006",
            "TWILIO_API_BASE": fake_url,
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "LOG_LEVEL": "WARNING",
        }
        | (extra_env or {})
    )
    bot = [sys.executable, "-m", "bot"]
    subprocess.run(
        [*bot, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=120
    )
    web = spawn_bot(["web", "--port", str(port), "--workers", str(web_workers)], env, cwd=ROOT)
    started = [spawn_bot(["worker"], env, cwd=ROOT) for _ in range(workers)]
    if not wait_ready(f"http://127.0.0.1:{port}/healthz", web, timeout=30):
        stop([web, *started])
        raise SystemExit(f"http://127.0.0.1:{port}/healthz did not come up in 30 s")
    time.sleep(1.0)
    return Service(f"http://127.0.0.1:{port}/webhooks/twilio/messages", env, web, started)


def offer(url: str, plan: list[Planned]) -> tuple[dict[str, float], list[float], int]:
    """Sends the planned webhooks open loop (testkit.load); returns each sender's send time
    (epoch seconds), the acknowledgement latencies and the error count."""
    outcomes = send(url, plan, ACCOUNT)
    sent_at = {o.planned.sender: o.sent_at for o in outcomes}
    return sent_at, [o.seconds for o in outcomes], sum(o.status != 200 for o in outcomes)


def first_replies(
    replies: list[dict[str, object]],
) -> tuple[dict[str, dict[str, object]], int]:
    """Each recipient's first reply, and how many replies repeated one already received."""
    first: dict[str, dict[str, object]] = {}
    duplicates = 0
    for reply in replies:
        to = str(reply["to"])
        if to in first:
            duplicates += 1
        else:
            first[to] = reply
    return first, duplicates


def received(fake_url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{fake_url}/_received", timeout=10) as response:
        data: dict[str, list[dict[str, object]]] = json.load(response)
    return data["sent"]


def run_rate(
    url: str,
    fake_url: str,
    rate: int,
    duration: float,
    run: int,
    settle: float,
    pids: dict[str, int],
) -> RunResult:
    began = time.perf_counter()
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own_before = time.process_time()
    rng = random.Random(run)
    plan = [
        Planned(at, f"+97798{run:02d}{i:06d}", rng.choice(BODIES), f"SM{run:04d}{i:028d}")
        for i, at in enumerate(at_rate(rate, int(rate * duration)))
    ]
    sent_at, latencies, errors = offer(url, plan)
    elapsed = time.perf_counter() - began
    cpu = {
        name: (cpu_seconds(pid) - cpu_before[name]) / elapsed * 100 for name, pid in pids.items()
    }
    generator = (time.process_time() - own_before) / elapsed * 100
    memory = {name: rss_mib(pid) for name, pid in pids.items()}
    # Several worker processes: report their sum as "worker".
    workers = [name for name in pids if name.startswith("worker")]
    memory["worker"] = sum(memory[name] for name in workers)
    cpu["worker"] = sum(cpu[name] for name in workers)
    prefix = f"+97798{run:02d}"
    deadline = time.monotonic() + settle
    while True:
        replies = [r for r in received(fake_url) if str(r["to"]).startswith(prefix)]
        if len({r["to"] for r in replies}) >= len(sent_at) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    firsts, duplicates = first_replies(replies)
    first = {to: float(reply["at"]) for to, reply in firsts.items()}  # type: ignore[arg-type]
    e2e = [first[s] - t for s, t in sent_at.items() if s in first]
    ms = 1000.0
    return RunResult(
        rate=rate,
        duration=round(elapsed, 1),
        sent=len(latencies),
        achieved_rate=round(len(latencies) / elapsed, 1),
        errors=errors,
        ack_p50_ms=round(percentile(latencies, 50) * ms, 1),
        ack_p99_ms=round(percentile(latencies, 99) * ms, 1),
        ack_max_ms=round(max(latencies) * ms, 1),
        answered=len(first),
        lost=len(sent_at) - len(first),
        duplicates=duplicates,
        e2e_p50_ms=round(percentile(e2e, 50) * ms, 1),
        e2e_p99_ms=round(percentile(e2e, 99) * ms, 1),
        web_rss_mib=round(memory["web"], 1),
        worker_rss_mib=round(memory["worker"], 1),
        web_cpu_pct=round(cpu["web"]),
        worker_cpu_pct=round(cpu["worker"]),
        harness_cpu_pct=round(generator + cpu["fake"]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 200, 300])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per rate")
    parser.add_argument("--api-delay", type=float, default=0.2, help="fake Twilio answer delay, s")
    parser.add_argument("--settle", type=float, default=60.0, help="max wait for replies, s")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="`bot worker` processes")
    parser.add_argument(
        "--until-e2e-p99",
        type=float,
        default=None,
        metavar="SECONDS",
        help="raise the rate by --step from the first --rates value until p99 e2e passes this",
    )
    parser.add_argument("--step", type=int, default=50, help="rate step for --until-e2e-p99")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per rate (the table shows each)"
    )
    parser.add_argument("--json", type=Path, help="write results here")
    args = parser.parse_args()

    procs: list[Process] = []
    fake: FakeProcess | None = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        fake = FakeProcess("testkit.fake_twilio", "--delay", str(args.api_delay))
        fake_url = fake.url
        service = start_service(workdir, fake.url, args.web_workers, args.workers)
        procs += [service.web, *service.workers]
        web, workers, env, url = service.web, service.workers, service.env, service.url
        queue = "redis" if env.get("REDIS_URL") else "sqlite"
        database = env["DATABASE_URL"].split(":", 1)[0]
        print(
            f"database={database} queue={queue} api_delay={args.api_delay}s "
            f"cores={os.cpu_count()} cpu_calibration_ms={calibrate()}"
        )
        results = []
        pids = {"web": web.pid, "fake": fake.pid} | {
            f"worker{n}": w.pid for n, w in enumerate(workers)
        }
        print(f"workers={args.workers} web_workers={args.web_workers}")
        if args.until_e2e_p99 is None:
            schedule = [rate for rate in args.rates for _ in range(args.repeat)]
            for run, rate in enumerate(schedule, start=1):
                result = run_rate(url, fake_url, rate, args.duration, run, args.settle, pids)
                results.append(result)
                print(json.dumps(asdict(result)), flush=True)
        else:
            # Raise the offered rate until the replies take too long (or are lost).
            rate, run = args.rates[0], 0
            while run < 40:
                run += 1
                result = run_rate(url, fake_url, rate, args.duration, run, args.settle, pids)
                results.append(result)
                print(json.dumps(asdict(result)), flush=True)
                if result.e2e_p99_ms > args.until_e2e_p99 * 1000 or result.lost or result.errors:
                    break
                rate += args.step
        print()
        print(
            "| offered msg/s | achieved | errors | ack p50 ms | ack p99 ms | answered | lost | dup "
            "| e2e p50 ms | e2e p99 ms | web RSS MiB | worker RSS MiB | web CPU % | worker CPU % "
            "| harness CPU % |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            print(
                f"| {r.rate} | {r.achieved_rate} | {r.errors} | {r.ack_p50_ms} | {r.ack_p99_ms} "
                f"| {r.answered}/{r.sent} | {r.lost} | {r.duplicates} | {r.e2e_p50_ms} "
                f"| {r.e2e_p99_ms} "
                f"| {r.web_rss_mib} | {r.worker_rss_mib} | {r.web_cpu_pct} | {r.worker_cpu_pct} "
                f"| {r.harness_cpu_pct} |"
            )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    finally:
        stop(list(reversed(procs)))
        if fake is not None:
            fake.stop()


if __name__ == "__main__":
    main()
