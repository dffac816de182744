"""What `make run` starts, under FAQ load: `bot run` (Rasa, web, worker, scheduler) on 127.0.0.1.

Topology: `python -m bot run` exactly as `make run` starts it (the real Rasa from
`.venv-rasa` with `models/nlu.tar.gz`, gunicorn 2 × 8 threads, two workers, one scheduler,
embedded SQLite database and queue), sending to the fake Twilio API (answering every send
after --api-delay s, 0.2 by default, as over the internet). Measures:

1. **start**: seconds from launching `bot run` (database already migrated, as on a second
   `make run`) until a signed webhook is accepted (HTTP 200), and until its answer — which
   needs Rasa — reaches the fake API.
2. **load**, per offered rate: signed webhooks open loop from distinct senders, new FAQ
   questions (bench/nlu_texts.py; a fifth of the contacts also send HELP a second later, to
   check replies come in order), then it waits until every message is answered (or
   --settle s). Ack and end-to-end percentiles, errors, answered/lost/duplicated, replies out
   of order, CPU ms per message of each process (web, worker, scheduler, Rasa) over the load
   and the drain, the harness's CPU and what the rest of the machine used meanwhile.

`--channels twilio sparrow android` does all of that for each channel in turn (bench/channels.py:
each its own fake provider, settings, inbound webhook as the provider sends it, a fresh
`bot run` and database), then prints one table with a row per channel and rate; Twilio is
the default and alone prints what it always did.

`--tree` runs the service of another checkout (a base commit; bench/compare.py --bench run)
with this harness. Bounded: every phase has a time limit.

    .venv/bin/python -m bench.run_load --rates 50 100 300 --duration 10
    .venv/bin/python -m bench.run_load --channels twilio sparrow android --rates 50 100
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.channels import NAMES, BenchChannel, make
from bench.nlu_texts import QuestionGenerator, ReplyKinds
from bench.webhook_load import calibrate, cpu_seconds
from bot.core.content import Content
from bot.core.messages import Language
from bot.processes import stop
from testkit.load import Planned, percentile
from testkit.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 400.0  # Rasa loading its model on a busy machine
BUCKET = re.compile(r"^bot_webhook_seconds_bucket\{([^}]*)\} ([0-9.e+]+)$", re.M)


@dataclass
class StartResult:
    accepted_s: float  # launch → first webhook answered 200
    answered_s: float  # launch → its reply at the fake API (Rasa loaded)


@dataclass
class PhaseResult:
    rate: int
    seconds: float
    sent: int
    achieved_rate: float
    errors: int
    ack_p50_ms: float
    ack_p99_ms: float
    ack_max_ms: float
    messages: int
    answered: int
    lost: int
    duplicates: int
    out_of_order: int
    e2e_p50_ms: float
    e2e_p99_ms: float
    drain_s: float  # from the first webhook until the last reply
    faq_pct: float  # replies that were a FAQ answer (any topic)
    nlu_failed: int
    cpu_ms: dict[str, float]  # per message, per process, over load + drain
    harness_cpu_pct: float
    others_cpu_pct: float  # the rest of the machine (other people's work), % of one core
    # Webhooks of this phase whose time inside the web app (Flask's before → after request,
    # bot_webhook_seconds) passed 25 / 50 ms: a slow ack that is slow inside the app, against
    # one that waited outside it (gunicorn's queue, the CPU, the harness).
    app_over_25ms: int = 0
    app_over_50ms: int = 0


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_states(var_dir: Path) -> dict[str, dict[str, object]]:
    """The supervised processes' states from `bot run`'s status file."""
    states: dict[str, dict[str, object]] = json.loads((var_dir / "processes.json").read_text())[
        "processes"
    ]
    return states


def pids(var_dir: Path) -> dict[str, int]:
    """The supervised processes' pids from `bot run`'s status file."""
    return {name: int(str(s["pid"])) for name, s in process_states(var_dir).items() if s.get("pid")}


def start(
    tree: Path,
    python: str,
    env: dict[str, str],
    port: int,
    channel: BenchChannel,
    extra: tuple[str, ...] = (),
    log: Path | None = None,
) -> tuple[subprocess.Popen[bytes], StartResult]:
    """Launches `bot run` in `tree`; returns once a webhook was accepted and answered. Its
    output goes to `log` (appended), else nowhere; a failure to start quotes its end."""
    url = f"http://127.0.0.1:{port}{channel.path}"
    rasa_port = free_port()
    while rasa_port == port:  # `port` is not bound yet: the kernel may offer it again
        rasa_port = free_port()
    launched = time.perf_counter()
    with log.open("ab") if log is not None else contextlib.nullcontext(None) as output:
        process = subprocess.Popen(
            [python, "-m", "bot", "run", "--port", str(port), "--rasa-port", str(rasa_port),
             *extra],
            cwd=tree, env=env, stdout=output or subprocess.DEVNULL, stderr=subprocess.STDOUT,
            process_group=0,
        )  # fmt: skip
    probe = Planned(0.0, "+9779700000001", "what is social mobilization?", "SMstartprobe")
    accepted = None
    while accepted is None:
        elapsed = time.perf_counter() - launched
        if elapsed > START_SECONDS or process.poll() is not None:
            stop([process])
            raise SystemExit(f"bot run in {tree} accepted no webhook in {elapsed:.0f} s{tail(log)}")
        (outcome,) = channel.deliver(url, [probe], timeout=2.0)
        if outcome.status == 200:
            accepted = time.perf_counter() - launched
        else:
            time.sleep(0.05)
    while not any(r["to"] == probe.sender for r in channel.received()):
        if time.perf_counter() - launched > START_SECONDS:
            stop([process])
            raise SystemExit(
                f"bot run in {tree} did not answer in {START_SECONDS:.0f} s{tail(log)}"
            )
        time.sleep(0.1)
    return process, StartResult(round(accepted, 2), round(time.perf_counter() - launched, 2))


def tail(log: Path | None, lines: int = 40) -> str:
    """The last lines of the service's output, for a failure's message ("" without one)."""
    if log is None or not log.exists():
        return ""
    end = log.read_bytes()[-20_000:].decode(errors="replace").splitlines()[-lines:]
    return "\n--- the end of bot run's output:\n" + "\n".join(end)


def webhook_buckets(url: str) -> dict[float, float]:
    """Cumulative bucket counts (upper bound s → webhooks) of the web's own histogram of
    accepted webhooks (status callbacks left out), from /metrics (every web process's,
    multiprocess mode); empty when /metrics does not answer."""
    base = url.split("/webhooks/", 1)[0]
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    buckets: dict[float, float] = defaultdict(float)
    for match in BUCKET.finditer(text):
        labels, value = match.group(1), float(match.group(2))
        if 'code="200"' in labels and "status" not in labels:  # not Twilio's status callbacks
            bound = re.search(r'le="([^"]+)"', labels)
            if bound and bound.group(1) != "+Inf":
                buckets[float(bound.group(1))] += value
            elif bound:
                buckets[math.inf] += value
    return dict(buckets)


def over(before: dict[float, float], after: dict[float, float], seconds: float) -> int:
    """Webhooks counted between two readings that took longer than `seconds` in the app."""
    total = after.get(math.inf, 0.0) - before.get(math.inf, 0.0)
    within = after.get(seconds, 0.0) - before.get(seconds, 0.0)
    return round(total - within)


def run_phase(
    url: str,
    channel: BenchChannel,
    rate: int,
    duration: float,
    settle: float,
    run: int,
    questions: QuestionGenerator,
    kinds: ReplyKinds,
    help_texts: set[str],
    processes: dict[str, int],
) -> PhaseResult:
    rng = random.Random(run)
    count = int(rate * duration)
    asked = questions.take(count)
    plan, topic = [], {}
    for i, at in enumerate(i / rate for i in range(count)):
        sender = f"+97798{run:02d}{i:06d}"
        plan.append(Planned(at, sender, asked[i].text, f"SM{run:04d}{i:028d}"))
        topic[sender] = asked[i].topic
        if rng.random() < 0.2:  # a second message a second later: replies must keep order
            plan.append(Planned(at + 1.0, sender, "HELP", f"SM{run:04d}{i:027d}h"))
    plan.sort(key=lambda p: p.at)
    per_sender: dict[str, int] = defaultdict(int)
    for planned in plan:
        per_sender[planned.sender] += 1
    cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    buckets_before = webhook_buckets(url)
    machine_before, own_before = machine_cpu_seconds(), time.process_time()
    began = time.perf_counter()
    epoch_began = time.time()
    outcomes = channel.deliver(url, plan)
    offered_s = time.perf_counter() - began
    prefix = f"+97798{run:02d}"
    deadline = time.monotonic() + settle
    while True:
        replies = [r for r in channel.received() if str(r["to"]).startswith(prefix)]
        if len(replies) >= len(plan) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    time.sleep(1.0)  # late duplicates
    replies = [r for r in channel.received() if str(r["to"]).startswith(prefix)]
    elapsed = time.perf_counter() - began
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in processes.items()}
    harness = time.process_time() - own_before
    buckets_after = webhook_buckets(url)
    others = machine_cpu_seconds() - machine_before - sum(cpu.values()) - harness
    by_sender: dict[str, list[dict[str, object]]] = defaultdict(list)
    for reply in sorted(replies, key=lambda r: float(r["at"])):
        by_sender[str(reply["to"])].append(reply)
    sent_at = {o.planned.sender: o.sent_at for o in outcomes if o.planned.body != "HELP"}
    e2e = [float(by_sender[s][0]["at"]) - t for s, t in sent_at.items() if by_sender.get(s)]  # type: ignore[arg-type]
    answered = sum(min(len(by_sender.get(s, [])), n) for s, n in per_sender.items())
    duplicates = sum(max(0, len(by_sender.get(s, [])) - n) for s, n in per_sender.items())
    out_of_order = sum(
        1
        for s, n in per_sender.items()
        if n == 2 and len(by_sender.get(s, [])) == 2
        and str(by_sender[s][0]["body"]).strip() in help_texts
    )  # fmt: skip
    tally = kinds.tally(
        (str(by_sender[s][0]["body"]), topic[s]) for s in sent_at if by_sender.get(s)
    )
    last = max((float(r["at"]) for r in replies), default=epoch_began)
    latencies = [o.seconds for o in outcomes]
    ms = 1000.0
    messages = len(plan)
    return PhaseResult(
        rate=rate,
        seconds=round(offered_s, 1),
        sent=len(outcomes),
        achieved_rate=round(len(outcomes) / offered_s, 1),
        errors=sum(o.status != 200 for o in outcomes),
        ack_p50_ms=round(percentile(latencies, 50) * ms, 1),
        ack_p99_ms=round(percentile(latencies, 99) * ms, 1),
        ack_max_ms=round(max(latencies) * ms, 1),
        messages=messages,
        answered=answered,
        lost=messages - answered,
        duplicates=duplicates,
        out_of_order=out_of_order,
        e2e_p50_ms=round(percentile(e2e, 50) * ms, 1),
        e2e_p99_ms=round(percentile(e2e, 99) * ms, 1),
        drain_s=round(last - epoch_began, 1),
        faq_pct=round(100 * (tally["faq_right"] + tally["faq_wrong"]) / max(1, len(e2e)), 1),
        nlu_failed=tally["nlu_unavailable"],
        cpu_ms={name: round(ms * seconds / messages, 2) for name, seconds in cpu.items()},
        harness_cpu_pct=round(100 * harness / elapsed),
        others_cpu_pct=round(100 * max(0.0, others) / elapsed),
        app_over_25ms=over(buckets_before, buckets_after, 0.025),
        app_over_50ms=over(buckets_before, buckets_after, 0.05),
    )


def measure(
    tree: Path, python: str, channel: BenchChannel, args: argparse.Namespace
) -> tuple[StartResult, list[PhaseResult]]:
    """One channel: a fresh database and `bot run` configured for it, the start, each rate."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-run-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL",
                                                           "RASA_URL")}  # fmt: skip
    env |= {
        "DATABASE_URL": f"sqlite:///{workdir / 'bot.db'}",
        "VAR_DIR": str(workdir),
        "SECRET_KEY": "bench-secret-key-0123456789",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "LOG_LEVEL": args.log_level,
    } | channel.env(f"http://127.0.0.1:{port}")
    database = f"bench_run_{uuid.uuid4().hex[:10]}"
    extra: tuple[str, ...] = ()
    if args.prod:  # what `make run-prod` starts, on a database and a queue of its own
        env |= {
            "DATABASE_URL": f"{args.postgres}/{database}",
            "REDIS_URL": args.redis,
            "QUEUE_NAME": database,
            "LOG_FORMAT": "json",
        }
        extra = ("--web-workers", "4", "--workers", "2", "--schedulers", "2")
        _postgres(args.postgres, f'CREATE DATABASE "{database}"')
    extra += tuple(args.run_args.split())
    process = None
    try:
        subprocess.run([python, "-m", "bot", "db", "upgrade"], cwd=tree, env=env, check=True,
                       capture_output=True, timeout=300)  # fmt: skip
        # Kept in the scratch directory when not asked for: a failure quotes its end.
        log = args.log or workdir / "bot-run.log"
        process, started = start(tree, python, env, port, channel, extra, log)
        print(json.dumps({"start": asdict(started)}), flush=True)
        nlu = {n: s for n, s in process_states(workdir).items() if n.startswith("rasa")}
        if any(s.get("restarts") or s.get("state") != "up" for s in nlu.values()):
            # The worker gave up waiting and answers without it: figures would not be these.
            raise SystemExit(f"the NLU server did not come up in {tree}: {nlu}{tail(log)}")
        processes = pids(workdir)
        if args.prod:  # the database and queue servers work for the service too
            processes |= server_pids()
        url = f"http://127.0.0.1:{port}{channel.path}"
        # The same questions for every channel: each gets a generator with the same seed.
        questions = QuestionGenerator(seed=11)
        content = Content.load()
        kinds = ReplyKinds(questions.catalogue, content)
        help_texts = {content.texts.get("help_menu", lang).strip() for lang in Language}
        results = []
        for run, rate in enumerate(args.rates, start=1):
            result = run_phase(url, channel, rate, args.duration, args.settle, run, questions,
                               kinds, help_texts, processes)  # fmt: skip
            results.append(result)
            print(json.dumps(asdict(result)), flush=True)
        return started, results
    finally:
        if process is not None:
            stop([process], timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
        if args.prod:
            _postgres(args.postgres, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _postgres(url: str, statement: str) -> None:
    """One statement on the server's maintenance database (CREATE/DROP DATABASE)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"{url}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def server_pids() -> dict[str, int]:
    """PostgreSQL's postmaster and Redis's server on this machine: under --prod their CPU is
    the service's too (cpu_seconds counts a process with its children: every backend)."""
    comms: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            comms[int(entry.name)] = (stat[stat.index("(") + 1 : stat.rindex(")")], parent)
    found: dict[str, int] = {}
    for pid, (comm, parent) in comms.items():
        if comm == "postgres" and comms.get(parent, ("", 0))[0] != "postgres":
            found["postgres"] = pid
        elif comm == "redis-server":
            found["redis"] = pid
    return found


def table(rows: list[tuple[str, StartResult, PhaseResult]]) -> None:
    """One Markdown row per channel and rate."""
    print()
    print("| channel | start: accepted / answered s | offered msg/s | achieved | errors "
          "| ack p50 ms | ack p99 ms | ack max ms | e2e p50 ms | e2e p99 ms | messages "
          "| answered | lost | dup | out of order | FAQ % | drain s "
          "| CPU ms/msg web / worker / Rasa / scheduler | others' CPU % "
          "| over 50 ms in the app |")  # fmt: skip
    print("|---" * 20 + "|")
    for name, started, r in rows:
        cpu = r.cpu_ms
        parts = [cpu.get("web", 0.0), sum(v for k, v in cpu.items() if k.startswith("worker")),
                 sum(v for k, v in cpu.items() if k.startswith("rasa")),
                 sum(v for k, v in cpu.items() if k.startswith("scheduler"))]  # fmt: skip
        servers = "".join(
            f" + {server} {cpu[server]:.2f}" for server in ("postgres", "redis") if server in cpu
        )
        print(
            f"| {name} | {started.accepted_s} / {started.answered_s} | {r.rate} "
            f"| {r.achieved_rate} | {r.errors} | {r.ack_p50_ms} | {r.ack_p99_ms} "
            f"| {r.ack_max_ms} | {r.e2e_p50_ms} | {r.e2e_p99_ms} | {r.messages} | {r.answered} "
            f"| {r.lost} | {r.duplicates} | {r.out_of_order} | {r.faq_pct} | {r.drain_s} "
            f"| {' / '.join(f'{p:.2f}' for p in parts)}{servers} | {r.others_cpu_pct} "
            f"| {r.app_over_50ms} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose service runs")
    parser.add_argument("--rates", type=int, nargs="+", default=[50, 100, 300])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--settle", type=float, default=120.0, help="max wait for replies, s")
    parser.add_argument("--api-delay", type=float, default=0.2, help="fake provider delay, s")
    parser.add_argument("--channel", choices=NAMES, default="twilio", help="the channel to drive")
    parser.add_argument("--channels", choices=NAMES, nargs="+",
                        help="several, one after another (overrides --channel)")  # fmt: skip
    parser.add_argument("--android-phones", type=int, default=3, help="phones in the pool")
    parser.add_argument(
        "--android-pace", type=float, default=10000.0,
        help="ANDROID_GATEWAY_PACE, segments/min per phone; it paces replies too (the "
        "service's default is 6; 10000, its maximum, leaves the service as the limit)",
    )  # fmt: skip
    parser.add_argument(
        "--prod", action="store_true",
        help="what `make run-prod` starts: PostgreSQL, Redis, gunicorn x4, 2 workers, "
        "2 schedulers (CPU of the PostgreSQL and Redis servers counted as theirs)",
    )  # fmt: skip
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432",
        help="--prod: the PostgreSQL server (a database is made per run)",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13", help="--prod: Redis")
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--log", type=Path, help="append the service's output here (else dropped)")
    parser.add_argument("--run-args", default="", help="more options for `bot run`, e.g. "
                        "'--workers 2' (a single option: --run-args=--option)")  # fmt: skip
    parser.add_argument("--log-level", default="WARNING", help="the service's LOG_LEVEL")
    args = parser.parse_args()
    tree = args.tree.resolve()
    python = sys.executable
    names = list(dict.fromkeys(args.channels or [args.channel]))
    twilio_only = names == ["twilio"]  # prints exactly what this bench always printed
    print(f"tree={tree} cores={os.cpu_count()} cpu_calibration_ms={calibrate()} "
          f"api_delay={args.api_delay}s", flush=True)  # fmt: skip
    measured: list[tuple[str, StartResult, list[PhaseResult]]] = []
    for name in names:
        channel = make(name, args.api_delay, args.android_pace, args.android_phones)
        try:
            if not twilio_only:
                print(f"channel {channel.describe()}", flush=True)
            started, results = measure(tree, python, channel, args)
        finally:
            channel.stop()
        measured.append((name, started, results))
    print(f"calibration after: cpu_calibration_ms={calibrate()}")
    if not twilio_only or args.prod:
        table([(name, started, r) for name, started, results in measured for r in results])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        documents = [
            {"channel": name, "start": asdict(started), "phases": [asdict(r) for r in results]}
            for name, started, results in measured
        ]
        document: dict[str, object] = (
            {"start": documents[0]["start"], "phases": documents[0]["phases"]}
            if twilio_only
            else {"channels": documents}
        )
        args.json.write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
