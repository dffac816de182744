"""`bot broadcast …` end to end: create, preview, send, list with the funnel, cancel."""

from __future__ import annotations

from click.testing import CliRunner

from bot.cli import main
from bot.runtime import Runtime
from testkit.fake_twilio import FakeTwilio
from tests.support.builders import add_contact


def test_create_preview_send_and_list(
    unpaced_runtime: Runtime, twilio: FakeTwilio, env: dict[str, str]
) -> None:
    env = env | {"BROADCAST_PACE": "sms=0,whatsapp=0"}
    add_contact(unpaced_runtime.db, language="ne", groups=("ward-3",))
    add_contact(unpaced_runtime.db, language="en", groups=("ward-3",))
    add_contact(unpaced_runtime.db, groups=("ward-3",), opted_out=True)
    runner = CliRunner()
    created = runner.invoke(
        main,
        [
            "broadcast",
            "create",
            "--title",
            "Camp",
            "--en",
            "Camp on Sunday",
            "--ne",
            "आइतबार शिविर",
            "--group",
            "ward-3",
        ],
        env=env,
    )
    assert created.exit_code == 0, created.output
    assert "broadcast 1 created (now)" in created.output
    assert "Recipients: 2" in created.output and "Skipped: 1 opted out" in created.output
    sent = runner.invoke(main, ["broadcast", "send", "1"], env=env)
    assert sent.exit_code == 0 and "broadcast 1: sending" in sent.output
    unpaced_runtime.sweep()  # the worker picks the run up (here: the test's runtime)
    assert sorted(c.form["Body"] for c in twilio.sent) == ["Camp on Sunday", "आइतबार शिविर"]
    listed = runner.invoke(main, ["broadcast", "list"], env=env)
    assert "3 messages: queued 2  skipped 1" in listed.output
    assert "skipped: opted_out: 1" in listed.output
    again = runner.invoke(main, ["broadcast", "cancel", "1"], env=env)
    assert again.exit_code == 1 and "already sent" in again.output


def test_bad_input_names_the_problem(unpaced_runtime: Runtime, env: dict[str, str]) -> None:
    runner = CliRunner()
    bad_time = runner.invoke(
        main,
        ["broadcast", "create", "--title", "x", "--en", "a", "--ne", "b", "--at", "soon"],
        env=env,
    )
    assert bad_time.exit_code == 2 and "not a date and time" in bad_time.output
    bad_every = runner.invoke(
        main,
        ["broadcast", "create", "--title", "x", "--en", "a", "--ne", "b", "--every", "often"],
        env=env,
    )
    assert bad_every.exit_code == 1 and "DAY HH:MM" in bad_every.output
    missing = runner.invoke(main, ["broadcast", "preview", "42"], env=env)
    assert missing.exit_code == 1 and "no broadcast 42" in missing.output
    scheduled = runner.invoke(
        main,
        ["broadcast", "create", "--title", "x", "--en", "a", "--ne", "b", "--every", "sun 08:00"],
        env=env,
    )
    assert scheduled.exit_code == 0, scheduled.output
    wrong = runner.invoke(main, ["broadcast", "send", "1"], env=env)
    assert wrong.exit_code == 1 and "use bot broadcast schedule" in wrong.output
    assert runner.invoke(main, ["broadcast", "schedule", "1"], env=env).output.strip() == (
        "broadcast 1: scheduled"
    )
