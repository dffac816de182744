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
import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token-0123456789"
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up in {timeout} s")


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


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


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


async def offer(
    url: str, rate: int, duration: float, run: int
) -> tuple[dict[str, float], list[float], int]:
    """Sends rate×duration signed webhooks on schedule.

    Returns each sender's send time, the acknowledgement latencies and the error count.
    """
    validator = RequestValidator(AUTH_TOKEN)
    total = int(rate * duration)
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    errors = 0
    rng = random.Random(run)
    # Sign and encode everything before the clock starts: Twilio's side of the work is not
    # the service's, and on 2 shared cores the generator's CPU would be taken from it.
    requests_ = []
    for i in range(total):
        form = {
            "MessageSid": f"SM{run:04d}{i:028d}",
            "AccountSid": ACCOUNT_SID,
            "From": f"+97798{run:02d}{i:06d}",
            "To": "+15005550006",
            "Body": rng.choice(BODIES),
            "NumMedia": "0",
        }
        headers = {
            "X-Twilio-Signature": validator.compute_signature(url, form),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        requests_.append((form["From"], urlencode(form).encode(), headers))
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int) -> None:
            nonlocal errors
            sender, body, headers = requests_[i]
            start = time.perf_counter()
            sent_at[sender] = time.time()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            latencies.append(time.perf_counter() - start)
            if not ok:
                errors += 1

        tasks = []
        t0 = time.perf_counter()
        for i in range(total):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return sent_at, latencies, errors


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
    sent_at, latencies, errors = asyncio.run(offer(url, rate, duration, run))
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
    first: dict[str, float] = {}
    duplicates = 0
    for reply in replies:
        to = str(reply["to"])
        if to in first:
            duplicates += 1
        else:
            first[to] = float(reply["at"])  # type: ignore[arg-type]
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

    python = sys.executable
    procs: list[subprocess.Popen[bytes]] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        fake = subprocess.Popen(
            [python, "-m", "tests.support.fake_twilio", "--delay", str(args.api_delay)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        procs.append(fake)
        assert fake.stdout is not None
        fake_url = fake.stdout.readline().decode().strip()
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
        )
        bot = [python, "-m", "bot"]
        subprocess.run([*bot, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
        web = subprocess.Popen(
            [*bot, "web", "--port", str(port), "--workers", str(args.web_workers)],
            env=env,
            cwd=ROOT,
        )
        workers = [
            subprocess.Popen([*bot, "worker"], env=env, cwd=ROOT) for _ in range(args.workers)
        ]
        procs += [web, *workers]
        wait_http(f"http://127.0.0.1:{port}/healthz")
        time.sleep(1.0)
        url = f"http://127.0.0.1:{port}/webhooks/twilio/messages"
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
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
