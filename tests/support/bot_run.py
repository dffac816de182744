"""`bot run` as a person starts it (`make run`), for the process tests (tests/test_processes.py):
its environment, a stand-in `rasa` for it to start and supervise, and starting it in a
session of its own and stopping it with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.builders import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM

ROOT = Path(__file__).resolve().parents[2]

# A `rasa` for `bot run` to start and supervise: the fake Rasa on the port of `-p PORT` and
# with the token of RASA_TOKEN in its environment (as nlu/serve.py takes them; it exits
# without one), sure that "what are the steps" is a FAQ question.
STAND_IN_RASA = """#!{python}
import os, sys
sys.path.insert(0, {root!r})
from testkit.fake_rasa import FakeRasa
from testkit.servers import serve
argv = sys.argv
{loading}rasa = FakeRasa(port=int(argv[argv.index("-p") + 1]))
rasa.token = os.environ["RASA_TOKEN"]
rasa.answers["what are the steps"] = [("faq_steps", 0.95)]
serve(rasa.start())
"""
# `bot run` with RASA_PYTHON and MODEL pointing at the stand-in.
BOT_RUN = (
    "import sys; from pathlib import Path; from bot import processes; "
    "processes.RASA_PYTHON, processes.MODEL = Path(sys.argv[1]), Path(sys.argv[2]); "
    "from bot.cli import main; main(sys.argv[3:], prog_name='bot')"
)


def run_env(var: Path, drop: tuple[str, ...], **settings: str) -> dict[str, str]:
    """This process's environment without the variables `drop`, with VAR_DIR `var`, a
    SECRET_KEY, and `settings`."""
    kept = {key: value for key, value in os.environ.items() if key not in drop}
    return kept | {"VAR_DIR": str(var), "SECRET_KEY": "test-secret-key-0123456789"} | settings


def twilio_env(api_base: str, public_url: str) -> dict[str, str]:
    """The settings that send through the fake Twilio API at `api_base`, for a service
    reached at `public_url`, its code importable from ROOT."""
    return {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_SMS_FROM": SMS_FROM,
        "TWILIO_API_BASE": api_base,
        "PUBLIC_URL": public_url,
        "PYTHONPATH": str(ROOT),
    }


def stand_in_rasa(folder: Path, loads_until: Path | None = None) -> list[str]:
    """Writes the stand-in `rasa` (which, given `loads_until`, waits for that file to exist
    before it answers, as Rasa loading its model) and an empty model into `folder`; returns
    the command line that runs `bot` with them (arguments to `bot` follow)."""
    loading = ""
    if loads_until is not None:
        loading = (
            "import time, pathlib\n"
            f"while not pathlib.Path({str(loads_until)!r}).exists(): time.sleep(0.05)\n"
        )
    rasa = folder / "rasa"
    rasa.write_text(STAND_IN_RASA.format(python=sys.executable, root=str(ROOT), loading=loading))
    rasa.chmod(0o755)
    model = folder / "nlu.tar.gz"
    model.write_text("")
    return [sys.executable, "-c", BOT_RUN, str(rasa), str(model)]


@contextmanager
def bot_run(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs `command` (`bot run ...`) with its output in `log`, in a session of its own as a
    terminal gives `make run` (Ctrl-C is a SIGINT to the whole process group). At the end,
    if it still runs: Ctrl-C, and SIGKILL to the group if it has not stopped in 15 s."""
    with log.open("wb") as out:
        run = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield run
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
            try:
                run.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()


@contextmanager
def at_exit(*calls: Callable[[], object]) -> Iterator[None]:
    """Calls each of `calls`, in order, when the block ends, however it ends."""
    try:
        yield
    finally:
        for call in calls:
            call()
