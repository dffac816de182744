"""Readiness, metrics and structured logs."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from werkzeug.middleware.proxy_fix import ProxyFix

from bot import logs
from bot.app import create_app
from bot.metrics import PROCESSES_FILE, write_process_states
from bot.ops import WEBHOOK_SECONDS
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from testkit.fake_rasa import FakeRasa
from tests.support.clock import FakeClock
from tests.support.phone import Phone


def test_readyz_reports_each_dependency(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "ready": True,
        "database": "ok",
        "queue": "ok",
        "nlu": "off",
        "processes": "off",
        "channels": "ok",  # no route down (tests/failover/ covers degraded and down)
        "backlog": "ok: inbound 0 waiting (oldest 0 s), outbox 0 (oldest 0 s)",
    }
    assert client.get("/healthz").status_code == 200


def test_readyz_names_a_process_bot_run_is_restarting(runtime: Runtime, client) -> None:  # type: ignore[no-untyped-def]
    """`bot run`'s supervisor writes each process's state; /readyz and /metrics read it."""
    runtime.settings.var_dir.mkdir(parents=True, exist_ok=True)
    status = runtime.settings.var_dir / PROCESSES_FILE
    up = {"state": "up", "restarts": 0}
    write_process_states(status, {"web": up, "worker-1": up | {"restarts": 2}})
    assert client.get("/readyz").get_json()["processes"] == "ok (2)"
    assert 'bot_process_restarts_total{process="worker-1"} 2.0' in client.get("/metrics").get_data(
        as_text=True
    )
    write_process_states(status, {"web": up, "worker-1": {"state": "down", "restarts": 3}})
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["processes"] == "down: worker-1"
    # A supervisor killed outright leaves its file behind: a dead supervisor's file is ignored.
    status.write_text(json.dumps({"supervisor": 2**22 + 1, "processes": {"web": {}}}))
    assert client.get("/readyz").get_json()["processes"] == "off"


def test_readyz_is_503_when_rasa_is_down(nlu_runtime: Runtime, rasa: FakeRasa) -> None:
    client = create_app(nlu_runtime.settings, nlu_runtime).test_client()
    assert client.get("/readyz").get_json()["nlu"] == "ok (1/1 servers)"
    rasa.status = 503
    response = client.get("/readyz")
    assert response.status_code == 503 and response.get_json()["nlu"] == "down"


def test_metrics_count_messages_queue_and_webhook_latency(
    phone: Phone,
    client,  # type: ignore[no-untyped-def]
) -> None:
    phone.send("HELP")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'bot_messages{direction="in",status="processed"} 1.0' in text
    assert 'bot_messages{direction="out",status="queued"} 1.0' in text
    assert "bot_queue_depth 0.0" in text
    assert 'bot_webhook_seconds_count{code="200",endpoint="/webhooks/twilio/messages"}' in text
    assert 'bot_inbound_total{channel="sms",duplicate="false"}' in text


def test_json_logs_carry_the_ids_of_the_work(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", fmt="json", role="worker")
    try:
        with logs.context(sid="SM123", message_id=7):
            logging.getLogger("bot.test").info("handled <script>")
        entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        logging.getLogger().handlers.clear()
    assert entry["sid"] == "SM123" and entry["message_id"] == 7
    assert entry["message"] == "handled <script>"
    assert entry["role"] == "worker" and entry["level"] == "info"


# -- Security (issue 12): bounded labels, operators only ---------------------------------------

REMOTE = {"REMOTE_ADDR": "203.0.113.9"}
OPS_TOKEN = "ops-token-0123456789abcdef"


def endpoint_labels() -> set[str]:
    return {
        sample.labels["endpoint"]
        for metric in WEBHOOK_SECONDS.collect()
        for sample in metric.samples
        if "endpoint" in sample.labels
    }


def test_random_urls_do_not_grow_the_metric_series(client: FlaskClient) -> None:
    before = endpoint_labels()
    for n in range(500):
        client.post(f"/webhooks/{uuid.uuid4().hex}/{n}", data={"Body": "x"})
    client.get("/webhooks/twilio/messages")  # the route, a wrong method
    added = endpoint_labels() - before
    assert added <= {"unmatched"}, f"{len(added)} new label values"
    assert "unmatched" in endpoint_labels()  # they were observed, under one label


def test_metrics_and_readiness_are_refused_to_remote_clients(client: FlaskClient) -> None:
    for path in ("/metrics", "/readyz"):
        assert client.get(path, environ_base=REMOTE).status_code == 404
        wrong = {"Authorization": "Bearer guess-guess-guess-guess"}
        assert client.get(path, environ_base=REMOTE, headers=wrong).status_code == 404
    assert client.get("/healthz", environ_base=REMOTE).status_code == 200


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_metrics_and_readiness_are_served_to_loopback(client: FlaskClient, address: str) -> None:
    for path in ("/metrics", "/readyz"):
        assert client.get(path, environ_base={"REMOTE_ADDR": address}).status_code == 200


@pytest.fixture
def ops_client(env: dict[str, str], clock: FakeClock) -> Iterator[FlaskClient]:
    settings = Settings.from_mapping(env | {"OPS_TOKEN": OPS_TOKEN})
    runtime = Runtime(settings, huey=make_huey(settings, immediate=True), clock=clock)
    yield create_app(settings, runtime).test_client()
    runtime.close()


def test_the_ops_token_opens_them_to_remote_clients(ops_client: FlaskClient) -> None:
    bearer = {"Authorization": f"Bearer {OPS_TOKEN}"}
    for path in ("/metrics", "/readyz"):
        assert ops_client.get(path, environ_base=REMOTE, headers=bearer).status_code == 200
        assert ops_client.get(path, environ_base=REMOTE).status_code == 404
        other = {"Authorization": f"Bearer {OPS_TOKEN[:-1]}x"}
        assert ops_client.get(path, environ_base=REMOTE, headers=other).status_code == 404
        basic = {"Authorization": f"Basic {OPS_TOKEN}"}
        assert ops_client.get(path, environ_base=REMOTE, headers=basic).status_code == 404


def test_a_remote_client_through_a_trusted_proxy_is_not_loopback(app) -> None:  # type: ignore[no-untyped-def]
    """Behind ProxyFix the address is the forwarded client's, even if the proxy is local."""
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)
    client = app.test_client()
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    assert client.get("/metrics", headers=forwarded).status_code == 404
    assert client.get("/metrics").status_code == 200
