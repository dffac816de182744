"""NLU benchmark: the service's overhead over Rasa, and FAQ throughput end to end, on 127.0.0.1.

Starts Rasa from `.venv-rasa` on free ports with a copy of `models/nlu.tar.gz` (the model as
it is when the run starts, so a retrain meanwhile changes nothing), then:

1. latency: one request at a time, N pairs of new questions; per pair one goes straight to
   `POST /model/parse` (a plain pooled `requests` session, JSON decoded) and the other through
   the service's own path (`nlu.client.RasaClient.parse` + `bot.core.faq.decide`), the order
   alternating per pair to cancel drift. Reports p50/p99 of each and what the service adds.
2. capacity: Rasa alone, closed loop at a few concurrencies (requests/s, CPU ms per parse).
3. end to end: the fake Twilio API (answering after 200 ms), `bot web` and `bot worker` with
   `RASA_URL` set, then signed webhooks open-loop from a distinct sender each, carrying
   questions that never repeat, at rising offered rates. Per rate: ack and end-to-end
   latency (webhook sent → reply received by the fake API), answered / lost / duplicated, what
   the replies were (FAQ answer, "Did you mean", fallback, "we will answer soon"), and memory
   and CPU of web, worker and Rasa. A sweep stops raising the rate once p99 end to end passes
   `--max-p99` or anything fails.

Every phase has a time limit. Env knobs (WORKER_CONCURRENCY, SEND_CONCURRENCY, NLU_TIMEOUT_MS,
…) pass through to the service; `--rasa-servers K` starts K Rasa servers (RASA_URL lists them),
`--rasa-args` adds `rasa run` options. The cores are shared: before each measurement it waits
(at most `--quiet-wait` s) for other work to use under `--quiet-below` % of a core, and every
run reports the CPU others used meanwhile and `cpu_calibration_ms`.

    .venv/bin/python -m bench.nlu_load --rates 25 50 75 100 125 150 --duration 20 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import requests

from bench.nlu_texts import Question, QuestionGenerator, ReplyKinds
from bench.webhook_load import (
    calibrate,
    cpu_seconds,
    first_replies,
    offer,
    received,
    rss_mib,
    start_service,
)
from bot import processes
from bot.core.faq import NluPolicy, decide
from bot.processes import Process, stop
from nlu.client import RasaClient
from testkit.load import Planned, at_rate, percentile
from testkit.servers import FakeProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
MS = 1000.0
# Rasa runs as the service runs it, with its HTTP API behind a token (`?token=` on each call).
RASA_TOKEN = os.environ.get("RASA_TOKEN") or secrets.token_urlsafe(32)
TOKEN = {"token": RASA_TOKEN}
# Settings passed through to the service (and Rasa) from the environment, shown in the output.
ENV_KNOBS = ("WORKER_CONCURRENCY", "SEND_CONCURRENCY", "NLU_TIMEOUT_MS", "WORKER_NICE",
             "SANIC_WORKERS")  # fmt: skip
KINDS = (
    "faq_right",
    "faq_wrong",
    "did_you_mean",
    "out_of_scope",
    "help_menu",
    "other",
    "nlu_unavailable",
)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


def others_cpu_pct(ours: list[int], seconds: float = 2.0) -> float:
    """CPU used by everything but `ours` and this process over `seconds`, % of one core."""

    def mine() -> float:
        return sum(cpu_seconds(p) for p in ours) + time.process_time()

    busy0, mine0, t0 = machine_cpu()[0], mine(), time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - t0
    return (machine_cpu()[0] - busy0 - (mine() - mine0)) / elapsed * 100


def wait_quiet(ours: list[int], below: float, limit: float) -> float:
    """Waits (at most `limit` s) until other work on the machine uses under `below` % of a
    core: on shared cores a run measured beside someone's training says little. Returns the
    last reading; the run goes ahead either way and reports what else ran beside it."""
    deadline = time.monotonic() + limit
    other = others_cpu_pct(ours)
    waited = False
    while other > below and time.monotonic() < deadline:
        if not waited:
            print(f"machine busy (others {other:.0f} % of a core); waiting up to {limit:.0f} s")
            waited = True
        other = others_cpu_pct(ours)
    return other


def _get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


# -- Rasa ---------------------------------------------------------------------------------


def start_rasa(model: Path, port: int, workdir: Path, timeout: float, extra: list[str]) -> Process:
    """Starts `rasa run` on 127.0.0.1:port; returns once GET / answers and a parse works."""
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"

    def parses() -> bool:
        try:
            probe = requests.post(
                f"{url}/model/parse", params=TOKEN, json={"text": "hello"}, timeout=5
            )
            return probe.ok and "intent" in probe.json()
        except (ValueError, requests.RequestException):
            return False

    try:
        return processes.start_rasa(
            port,
            RASA_TOKEN,
            model=model,
            extra=extra,
            cwd=workdir,
            env=dict(os.environ, RASA_TELEMETRY_ENABLED="false"),  # loopback only
            log_file=workdir / "rasa.log",
            timeout=timeout,
            probe=parses,
        )
    except processes.StartError:
        tail = (workdir / "rasa.log").read_text(errors="replace")[-3000:]
        raise SystemExit(
            f"Rasa on {url} did not answer a parse in {timeout:.0f} s:\n{tail}"
        ) from None


# -- 1. latency overhead --------------------------------------------------------------------


@dataclass
class Latency:
    pairs: int
    direct_p50_ms: float
    direct_p90_ms: float
    direct_p99_ms: float
    service_p50_ms: float
    service_p90_ms: float
    service_p99_ms: float
    added_p50_ms: float  # service p50 − direct p50
    added_p99_ms: float  # service p99 − direct p99
    paired_median_ms: float  # median over pairs of (service − direct)
    in_process_us: float  # the service's own work on an answer: parse_response + decide
    decisions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def latency_phase(
    url: str, gen: QuestionGenerator, pairs: int, warmup: int, limit: float
) -> Latency:
    """Sequential (one request in flight): latency, not queueing."""
    from nlu.client import parse_response

    topics = set(gen.catalogue.topics)
    policy = NluPolicy()
    plain = requests.Session()
    plain.trust_env = False
    client = RasaClient([url], timeout=10.0, token=RASA_TOKEN)
    decisions: dict[str, int] = {}
    payloads: list[Any] = []

    def direct(question: Question) -> None:
        response = plain.post(
            f"{url}/model/parse", params=TOKEN, json={"text": question.text}, timeout=10
        )
        response.raise_for_status()
        payloads.append(response.json())

    def service(question: Question) -> None:
        decision = decide(client.parse(question.text), topics, policy)
        kind = decision.kind
        if kind == "answer":
            kind = "answer_right" if decision.topics[0] == question.topic else "answer_wrong"
        decisions[kind] = decisions.get(kind, 0) + 1

    for _ in range(warmup):
        direct(gen.next())
        service(gen.next())
    decisions.clear()
    payloads.clear()
    a: list[float] = []
    b: list[float] = []
    began = time.monotonic()
    for i in range(pairs):
        if time.monotonic() - began > limit:
            print(f"latency: time limit {limit:.0f} s reached after {i} pairs", flush=True)
            break
        calls: list[tuple[Callable[[Question], None], list[float]]] = [(direct, a), (service, b)]
        if i % 2:
            calls.reverse()
        for call, into in calls:
            question = gen.next()
            start = time.perf_counter()
            call(question)
            into.append(time.perf_counter() - start)
    # The service's own CPU on top of the HTTP call, measured without the network's noise.
    start = time.perf_counter()
    for payload in payloads:
        decide(parse_response(payload), topics, policy)
    own = (time.perf_counter() - start) / max(1, len(payloads))
    diffs = [y - x for x, y in zip(a, b, strict=False)]
    return Latency(
        pairs=len(b),
        direct_p50_ms=round(percentile(a, 50) * MS, 2),
        direct_p90_ms=round(percentile(a, 90) * MS, 2),
        direct_p99_ms=round(percentile(a, 99) * MS, 2),
        service_p50_ms=round(percentile(b, 50) * MS, 2),
        service_p90_ms=round(percentile(b, 90) * MS, 2),
        service_p99_ms=round(percentile(b, 99) * MS, 2),
        added_p50_ms=round((percentile(b, 50) - percentile(a, 50)) * MS, 2),
        added_p99_ms=round((percentile(b, 99) - percentile(a, 99)) * MS, 2),
        paired_median_ms=round(statistics.median(diffs) * MS, 2) if diffs else float("nan"),
        in_process_us=round(own * 1e6, 1),
        decisions=decisions,
        seconds=round(time.monotonic() - began, 1),
    )


# -- 2. Rasa's capacity alone ---------------------------------------------------------------


@dataclass
class Capacity:
    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    rasa_cpu_ms_per_parse: float
    rasa_cpu_pct: float


async def _closed_loop(
    urls: list[str], texts: list[str], concurrency: int, seconds: float
) -> list[float]:
    latencies: list[float] = []
    position = 0
    deadline = time.perf_counter() + seconds
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def loop() -> None:
            nonlocal position
            while time.perf_counter() < deadline and position < len(texts):
                text = texts[position]
                url = urls[position % len(urls)]
                position += 1
                start = time.perf_counter()
                async with session.post(
                    f"{url}/model/parse", params=TOKEN, json={"text": text}
                ) as response:
                    await response.read()
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return latencies


def capacity_phase(
    urls: list[str], rasa_pids: list[int], gen: QuestionGenerator, levels: list[int], seconds: float
) -> list[Capacity]:
    results = []
    for concurrency in levels:
        texts = [q.text for q in gen.take(int(seconds * 1000))]
        cpu0 = sum(cpu_seconds(p) for p in rasa_pids)
        began = time.perf_counter()
        latencies = asyncio.run(_closed_loop(urls, texts, concurrency, seconds))
        elapsed = time.perf_counter() - began
        cpu = sum(cpu_seconds(p) for p in rasa_pids) - cpu0
        results.append(
            Capacity(
                concurrency=concurrency,
                requests_per_s=round(len(latencies) / elapsed, 1),
                p50_ms=round(percentile(latencies, 50) * MS, 1),
                p99_ms=round(percentile(latencies, 99) * MS, 1),
                rasa_cpu_ms_per_parse=round(cpu / max(1, len(latencies)) * MS, 2),
                rasa_cpu_pct=round(cpu / elapsed * 100),
            )
        )
    return results


# -- 3. end to end --------------------------------------------------------------------------


@dataclass
class RunResult:
    sweep: int
    rate: int
    duration: float
    sent: int
    achieved_rate: float
    errors: int
    ack_p50_ms: float
    ack_p99_ms: float
    answered: int
    lost: int
    duplicates: int
    replied_per_s: float  # answered / (last reply − first webhook)
    e2e_p50_ms: float
    e2e_p99_ms: float
    e2e_max_ms: float
    kinds: dict[str, int]
    faq_pct: float  # FAQ answers (right topic or not) among first replies
    faq_wrong: int
    suggest_pct: float
    fallback_pct: float  # out of scope, menu, greeting/thanks replies
    unavailable: int  # "we will answer soon": the NLU did not answer in time
    web_rss_mib: float
    worker_rss_mib: float
    rasa_rss_mib: float
    web_cpu_pct: float
    worker_cpu_pct: float
    rasa_cpu_pct: float
    harness_cpu_pct: float
    cpu_ms_per_msg: float  # web + worker + Rasa CPU per message sent: capacity = cores / this
    other_cpu_pct: float  # everything else on the machine (other engineers' work), % of 1 core
    other_before_pct: float  # the same, in the 2 s before the run
    cpu_calibration_ms: int  # bench.webhook_load.calibrate() just before the run

    def failed(self, max_p99_ms: float) -> bool:
        return (
            bool(self.errors or self.lost or self.duplicates or self.unavailable)
            or not self.e2e_p99_ms <= max_p99_ms
        )


def run_rate(
    url: str,
    fake_url: str,
    questions: list[Question],
    rate: int,
    sweep: int,
    run: int,
    settle: float,
    pids: dict[str, list[int]],
    kinds: ReplyKinds,
    quiet: tuple[float, float],
) -> RunResult:
    ours = [p for group in pids.values() for p in group]
    other_before = wait_quiet(ours, *quiet)
    calibration = calibrate()
    prefix = f"+97798{run:02d}"
    expected = {f"{prefix}{i:06d}": q.topic for i, q in enumerate(questions)}
    count0 = int(_get_json(f"{fake_url}/_count")["sent"])

    def cpu(name: str) -> float:
        return sum(cpu_seconds(p) for p in pids[name])

    cpu_before = {name: cpu(name) for name in pids}
    own_before = time.process_time()
    machine_before = machine_cpu()[0]
    began = time.perf_counter()
    plan = [
        Planned(at, f"{prefix}{i:06d}", question.text, f"SM{prefix[-4:]}{i:028d}")
        for i, (at, question) in enumerate(
            zip(at_rate(rate, len(questions)), questions, strict=True)
        )
    ]
    sent_at, latencies, errors = offer(url, plan)
    elapsed = time.perf_counter() - began
    cpu_pct = {name: (cpu(name) - cpu_before[name]) / elapsed * 100 for name in pids}
    generator = (time.process_time() - own_before) / elapsed * 100
    machine_pct = (machine_cpu()[0] - machine_before) / elapsed * 100
    memory = {name: sum(rss_mib(p) for p in pids[name]) for name in pids}
    # Wait (bounded) for every reply: count first, the full list once at the end.
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if int(_get_json(f"{fake_url}/_count")["sent"]) - count0 >= len(sent_at):
            time.sleep(0.5)  # a duplicate would arrive about now
            break
        time.sleep(0.25)
    replies = [r for r in received(fake_url) if str(r["to"]).startswith(prefix)]
    firsts, duplicates = first_replies(replies)
    first = {
        to: (float(reply["at"]), str(reply["body"]))  # type: ignore[arg-type]
        for to, reply in firsts.items()
    }
    e2e = [first[s][0] - t for s, t in sent_at.items() if s in first]
    tally = kinds.tally((body, expected[to]) for to, (_, body) in first.items())
    answered = len(first)
    span = max((at for at, _ in first.values()), default=0.0) - min(sent_at.values())

    def pct(*names: str) -> float:
        return round(100 * sum(tally[n] for n in names) / answered, 1) if answered else 0.0

    return RunResult(
        sweep=sweep,
        rate=rate,
        duration=round(elapsed, 1),
        sent=len(latencies),
        achieved_rate=round(len(latencies) / elapsed, 1),
        errors=errors,
        ack_p50_ms=round(percentile(latencies, 50) * MS, 1),
        ack_p99_ms=round(percentile(latencies, 99) * MS, 1),
        answered=answered,
        lost=len(sent_at) - answered,
        duplicates=duplicates,
        replied_per_s=round(answered / span, 1) if span > 0 else 0.0,
        e2e_p50_ms=round(percentile(e2e, 50) * MS, 1),
        e2e_p99_ms=round(percentile(e2e, 99) * MS, 1),
        e2e_max_ms=round(max(e2e, default=float("nan")) * MS, 1),
        kinds={k: tally[k] for k in KINDS if tally[k]},
        faq_pct=pct("faq_right", "faq_wrong"),
        faq_wrong=tally["faq_wrong"],
        suggest_pct=pct("did_you_mean"),
        fallback_pct=pct("out_of_scope", "help_menu", "other"),
        unavailable=tally["nlu_unavailable"],
        web_rss_mib=round(memory["web"], 1),
        worker_rss_mib=round(memory["worker"], 1),
        rasa_rss_mib=round(memory["rasa"], 1),
        web_cpu_pct=round(cpu_pct["web"]),
        worker_cpu_pct=round(cpu_pct["worker"]),
        rasa_cpu_pct=round(cpu_pct["rasa"]),
        harness_cpu_pct=round(generator + cpu_pct["fake"]),
        cpu_ms_per_msg=round(
            sum(cpu_pct[n] for n in ("web", "worker", "rasa")) * 10 / (len(latencies) / elapsed),
            2,
        ),
        other_cpu_pct=round(machine_pct - generator - sum(cpu_pct.values())),
        other_before_pct=round(other_before),
        cpu_calibration_ms=calibration,
    )


# -- tables ---------------------------------------------------------------------------------


def latency_table(lat: Latency) -> str:
    return "\n".join(
        [
            "| path | p50 ms | p90 ms | p99 ms |",
            "|---|---|---|---|",
            f"| direct POST /model/parse | {lat.direct_p50_ms} | {lat.direct_p90_ms} "
            f"| {lat.direct_p99_ms} |",
            f"| service: RasaClient.parse + decide | {lat.service_p50_ms} "
            f"| {lat.service_p90_ms} | {lat.service_p99_ms} |",
            f"| service adds | {lat.added_p50_ms} | - | {lat.added_p99_ms} |",
            "",
            f"{lat.pairs} pairs in {lat.seconds} s; median of per-pair differences "
            f"{lat.paired_median_ms} ms; the service's own work per answer (parse_response + "
            f"decide, no network) {lat.in_process_us} µs; decisions: {lat.decisions}",
        ]
    )


def capacity_table(rows: list[Capacity]) -> str:
    lines = [
        "| concurrency | parses/s | p50 ms | p99 ms | Rasa CPU ms/parse | Rasa CPU % |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c.concurrency} | {c.requests_per_s} | {c.p50_ms} | {c.p99_ms} "
        f"| {c.rasa_cpu_ms_per_parse} | {c.rasa_cpu_pct} |"
        for c in rows
    ]
    return "\n".join(lines)


def runs_table(rows: list[RunResult]) -> str:
    lines = [
        "| sweep | offered msg/s | achieved | errors | ack p50 ms | ack p99 ms | answered | lost "
        "| dup | replied/s | e2e p50 ms | e2e p99 ms | FAQ answer % (wrong) | did you mean % "
        "| fallback % | NLU timeouts | web RSS MiB | worker RSS MiB | Rasa RSS MiB | web CPU % "
        "| worker CPU % | Rasa CPU % | service CPU ms/msg | harness CPU % | other CPU % "
        "| calibration ms |",
        "|" + "---|" * 26,
    ]
    lines += [
        f"| {r.sweep} | {r.rate} | {r.achieved_rate} | {r.errors} | {r.ack_p50_ms} "
        f"| {r.ack_p99_ms} | {r.answered}/{r.sent} | {r.lost} | {r.duplicates} "
        f"| {r.replied_per_s} | {r.e2e_p50_ms} | {r.e2e_p99_ms} | {r.faq_pct} ({r.faq_wrong}) "
        f"| {r.suggest_pct} | {r.fallback_pct} | {r.unavailable} | {r.web_rss_mib} "
        f"| {r.worker_rss_mib} | {r.rasa_rss_mib} | {r.web_cpu_pct} | {r.worker_cpu_pct} "
        f"| {r.rasa_cpu_pct} | {r.cpu_ms_per_msg} | {r.harness_cpu_pct} | {r.other_cpu_pct} "
        f"| {r.cpu_calibration_ms} |"
        for r in rows
    ]
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=int, nargs="+", default=[25, 50, 75, 100, 125, 150])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per rate")
    parser.add_argument("--repeat", type=int, default=1, help="sweeps over the rates")
    parser.add_argument("--max-p99", type=float, default=1000.0, help="stop raising above, ms")
    parser.add_argument("--keep-going", action="store_true", help="run every rate regardless")
    parser.add_argument("--api-delay", type=float, default=0.2, help="fake Twilio delay, s")
    parser.add_argument("--settle", type=float, default=60.0, help="max wait for replies, s")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--quiet-below", type=float, default=40.0, help="%% of a core others may use before a run"
    )
    parser.add_argument("--quiet-wait", type=float, default=90.0, help="max wait for that, s")
    parser.add_argument("--pairs", type=int, default=1000, help="latency phase: pairs")
    parser.add_argument("--latency-limit", type=float, default=120.0, help="latency phase, s")
    parser.add_argument("--capacity", type=int, nargs="*", default=[1, 4, 16])
    parser.add_argument("--capacity-seconds", type=float, default=5.0)
    parser.add_argument("--rasa-servers", type=int, default=1, help="RASA_URL lists them all")
    parser.add_argument("--rasa-args", default="", help="more `rasa run` options, one string")
    parser.add_argument("--rasa-start-timeout", type=float, default=240.0)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--seed", type=int, default=7, help="question generator seed")
    parser.add_argument("--json", type=Path, help="write results here")
    args = parser.parse_args()
    if not processes.rasa_available():
        raise SystemExit("needs .venv-rasa and models/nlu.tar.gz: run `make train` first")

    workdir = Path(tempfile.mkdtemp(prefix="bench-nlu-"))
    procs: list[Process] = []
    fake: FakeProcess | None = None
    try:
        model = workdir / "nlu.tar.gz"
        shutil.copyfile(processes.MODEL, model)  # a retrain meanwhile does not touch this run
        digest = hashlib.sha256(model.read_bytes()).hexdigest()[:12]
        gen = QuestionGenerator(seed=args.seed)
        kinds = ReplyKinds(gen.catalogue, gen.content)
        rasa_procs = []
        urls = []
        started = time.monotonic()
        for i in range(args.rasa_servers):
            port = free_port()
            rasa = start_rasa(
                model, port, workdir / f"rasa-{i}", args.rasa_start_timeout, args.rasa_args.split()
            )
            procs.append(rasa)
            rasa_procs.append(rasa)
            urls.append(f"http://127.0.0.1:{port}")
        meta: dict[str, Any] = {
            "model_sha256": digest,
            "rasa_servers": args.rasa_servers,
            "rasa_args": args.rasa_args,
            "rasa_start_s": round(time.monotonic() - started, 1),
            "cores": os.cpu_count(),
            "api_delay_s": args.api_delay,
            "env": {k: os.environ[k] for k in ENV_KNOBS if k in os.environ},
            "cpu_calibration_ms": calibrate(),
        }
        print(" ".join(f"{k}={v}" for k, v in meta.items()), flush=True)
        report: dict[str, Any] = {"meta": meta}

        rasa_pids = [p.pid for p in rasa_procs]
        if not args.skip_latency or args.capacity:
            meta["other_before_pct"] = round(
                wait_quiet(rasa_pids, args.quiet_below, args.quiet_wait)
            )
        if not args.skip_latency:
            lat = latency_phase(urls[0], gen, args.pairs, 50, args.latency_limit)
            report["latency"] = asdict(lat)
            print("\n## NLU latency, one request at a time\n\n" + latency_table(lat), flush=True)
        if args.capacity:
            cap = capacity_phase(urls, rasa_pids, gen, args.capacity, args.capacity_seconds)
            report["capacity"] = [asdict(c) for c in cap]
            print("\n## Rasa alone, closed loop\n\n" + capacity_table(cap), flush=True)

        if not args.skip_e2e:
            fake = FakeProcess("testkit.fake_twilio", "--delay", str(args.api_delay))
            fake_url = fake.url
            service = start_service(
                workdir,
                fake_url,
                args.web_workers,
                1,
                {"RASA_URL": ",".join(urls), "RASA_TOKEN": RASA_TOKEN},
            )
            web, worker, url = service.web, service.workers[0], service.url
            procs += [web, worker]
            pids = {
                "web": [web.pid],
                "worker": [worker.pid],
                "rasa": [p.pid for p in rasa_procs],
                "fake": [fake.pid],
            }
            results: list[RunResult] = []
            run = 0
            print("\n## End to end (JSON per run)\n", flush=True)
            for sweep in range(1, args.repeat + 1):
                for rate in args.rates:
                    run += 1
                    if run > 99:
                        raise SystemExit("at most 99 runs per invocation (sender numbering)")
                    questions = gen.take(int(rate * args.duration))
                    result = run_rate(
                        url,
                        fake_url,
                        questions,
                        rate,
                        sweep,
                        run,
                        args.settle,
                        pids,
                        kinds,
                        (args.quiet_below, args.quiet_wait),
                    )
                    results.append(result)
                    print(json.dumps(asdict(result)), flush=True)
                    if result.failed(args.max_p99) and not args.keep_going:
                        break
                    time.sleep(2.0)  # let the WAL checkpoint and the sweeper settle
            report["runs"] = [asdict(r) for r in results]
            print("\n## End to end: webhook in → reply at the fake Twilio API\n", flush=True)
            print(runs_table(results), flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    finally:
        stop(list(reversed(procs)))
        if fake is not None:
            fake.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
