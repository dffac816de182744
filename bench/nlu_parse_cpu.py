"""Rasa's CPU per parse, model against model, in one Rasa server on 127.0.0.1 (issue 15).

Starts `rasa run` from `.venv-rasa` with the first model, then in rounds loads each model
in turn (`PUT /model`, the order alternating per round to cancel drift), warms it up and
parses every text of the held-out sets (`nlu/eval.yml`, `nlu/heldout.yml`, as the client
sends them), one request at a time, reading the server process's CPU time (user + system,
from /proc) before and after. Reports CPU ms per parse per model (median over rounds) and
`cpu_calibration_ms`, a fixed workload's time, to compare runs made on different days.

    .venv/bin/python -m bench.nlu_parse_cpu --models build/base.tar.gz models/nlu.tar.gz
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import statistics
import subprocess
import time
from pathlib import Path

import requests

from bench.webhook_load import calibrate, cpu_seconds
from bot.core.wording import fold
from bot.processes import RASA_PYTHON
from nlu.evaluate import EVAL_SETS, load_eval_set


def rasa_run(port: int, token: str, model: Path) -> list[str]:
    """`rasa run` itself: only it can swap models over HTTP (`PUT /model`), which this bench
    needs; `bot run` serves the model with nlu/serve.py (bench/nlu_server_cpu.py)."""
    return [str(RASA_PYTHON.parent / "rasa"), "run", "--enable-api", f"--auth-token={token}",
            "-i", "127.0.0.1", "-p", str(port), "--model", str(model), "--quiet"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, token: str, limit: float = 300.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/status", params={"token": token}, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise SystemExit("Rasa did not start")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", nargs="+", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    models = [m.resolve() for m in args.models]
    texts = [fold(item["text"]) for path in EVAL_SETS for item in load_eval_set(path)]
    port, token = free_port(), secrets.token_urlsafe(16)
    url = f"http://127.0.0.1:{port}"
    rasa = subprocess.Popen(  # our own venv's rasa, loopback only
        rasa_run(port, token, models[0]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    session = requests.Session()
    session.trust_env = False
    results: dict[Path, list[float]] = {m: [] for m in models}
    try:
        wait_up(url, token)
        for round_ in range(args.rounds):
            order = models if round_ % 2 == 0 else list(reversed(models))
            for model in order:
                loaded = session.put(
                    f"{url}/model",
                    params={"token": token},
                    data=json.dumps({"model_file": str(model)}),
                    headers={"Content-Type": "application/json"},
                    timeout=300,
                )
                loaded.raise_for_status()
                for text in texts[:20]:  # warm-up
                    session.post(f"{url}/model/parse", params={"token": token}, json={"text": text})
                before = cpu_seconds(rasa.pid)
                for text in texts:
                    session.post(
                        f"{url}/model/parse", params={"token": token}, json={"text": text}
                    ).raise_for_status()
                used = cpu_seconds(rasa.pid) - before
                results[model].append(used * 1000 / len(texts))
    finally:
        rasa.terminate()
        rasa.wait(timeout=30)
    print(f"cpu_calibration_ms: {calibrate()}")
    print(f"{len(texts)} parses per model per round, {args.rounds} rounds")
    for model, figures in results.items():
        spread = ", ".join(f"{f:.2f}" for f in figures)
        print(f"{model}: {statistics.median(figures):.2f} CPU ms/parse (rounds: {spread})")


if __name__ == "__main__":
    main()
