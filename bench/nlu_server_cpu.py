"""The NLU server's CPU per parse: `rasa run` against nlu/serve.py, same model, one run.

Starts both servers from `.venv-rasa` on 127.0.0.1 with `models/nlu.tar.gz` (one at a time,
so they never compete), warms each up, then parses every text of the held-out sets
(`nlu/eval.yml`, `nlu/heldout.yml`, folded as the client sends them) one request at a time,
and again from 8 threads at once (as the worker's turns do under load), reading the server
process's CPU (user + system, from /proc) before and after. Rounds alternate the order.
Prints `cpu_calibration_ms` and the CPU ms per parse of each server (median over rounds).

    .venv/bin/python -m bench.nlu_server_cpu --rounds 2
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.nlu_parse_cpu import rasa_run
from bench.webhook_load import calibrate, cpu_seconds
from bot.core.wording import fold
from bot.processes import MODEL, ONE_THREAD, rasa_command, stop, wait_ready
from nlu.client import RasaClient
from nlu.evaluate import EVAL_SETS, load_eval_set
from testkit.servers import free_port

# (port, token, model) -> the command; nlu.serve takes the token from RASA_TOKEN (below).
SERVERS: dict[str, Callable[[int, str, Path], list[str]]] = {
    "rasa run": rasa_run,
    "nlu.serve": lambda port, _token, model: rasa_command(port, model),
}


def measure(name: str, model: Path, texts: list[str], threads: int) -> tuple[float, float, float]:
    """(start s, CPU ms per parse one at a time, CPU ms per parse from `threads` threads)."""
    port, token = free_port(), secrets.token_urlsafe(16)
    env = {**ONE_THREAD, **os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "RASA_TOKEN": token}  # fmt: skip
    began = time.monotonic()
    server = subprocess.Popen(
        SERVERS[name](port, token, model),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        if not wait_ready(f"{url}/", server, timeout=300, interval=0.3):
            raise SystemExit(f"{name} did not start")
        started = time.monotonic() - began
        client = RasaClient([url], token=token, timeout=30.0)
        for text in texts[:20]:
            client.parse(text)
        before = cpu_seconds(server.pid)
        for text in texts:
            client.parse(text)
        one = (cpu_seconds(server.pid) - before) * 1000 / len(texts)
        before = cpu_seconds(server.pid)
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(client.parse, texts))
        many = (cpu_seconds(server.pid) - before) * 1000 / len(texts)
        return started, one, many
    finally:
        stop([server], timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--model", type=Path, default=MODEL)
    args = parser.parse_args(argv)
    texts = [fold(item["text"]) for path in EVAL_SETS for item in load_eval_set(path)]
    print(f"cpu_calibration_ms={calibrate()} texts={len(texts)} model={args.model}", flush=True)
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in SERVERS}
    for round_ in range(args.rounds):
        order = list(SERVERS) if round_ % 2 == 0 else list(reversed(SERVERS))
        for name in order:
            figures = measure(name, args.model.resolve(), texts, args.threads)
            results[name].append(figures)
            print(f"round {round_ + 1} {name}: start {figures[0]:.1f} s, CPU ms/parse "
                  f"{figures[1]:.2f} one at a time, {figures[2]:.2f} from {args.threads} "
                  "threads", flush=True)  # fmt: skip
    print(f"calibration after: cpu_calibration_ms={calibrate()}")
    print("| server | start s | CPU ms/parse, one at a time | CPU ms/parse, 8 threads |")
    print("|---|---|---|---|")
    for name, rows in results.items():
        print(f"| {name} | {statistics.median(r[0] for r in rows):.1f} "
              f"| {statistics.median(r[1] for r in rows):.2f} "
              f"| {statistics.median(r[2] for r in rows):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
