"""The Android gateway's webhook acknowledgement against Twilio's, in one process and one run.

What it measures: the web process's share of acknowledging one inbound SMS (routing,
authentication, parsing, storing, enqueueing for the worker), for a signed `sms:received`
webhook from a gateway phone (HMAC-SHA256 over the raw JSON body, bot/channels/android) and
for a signed Twilio form (HMAC-SHA1 over URL and form), alternately, through the Flask app
in-process on the embedded default (SQLite database and queue in a temporary folder; no
worker runs, so nothing is answered). Each message comes from a distinct sender. Prints the
CPU calibration (the same workload as bench/webhook_load.py) and p50/p99/max per channel.
Loopback only (the fakes are not even called); bounded by --count.

    .venv/bin/python -m bench.android_webhook --count 2000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

from twilio.request_validator import RequestValidator

from bench.webhook_load import calibrate
from bot.app import create_app
from bot.db.migrate import upgrade
from bot.queue import make_huey
from bot.runtime import Runtime
from bot.settings import Settings
from testkit.fake_android import FakeAndroidPhone
from testkit.load import percentile

AUTH_TOKEN = "bench-auth-token-0123456789"
PUBLIC_URL = "http://127.0.0.1:5000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="webhooks per channel")
    args = parser.parse_args()
    print(f"cpu_calibration_ms={calibrate()}", flush=True)
    phone = FakeAndroidPhone(signing_key="bench-signing-key")  # never started: it only signs
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        url = f"sqlite:///{workdir / 'bot.db'}"
        upgrade(url)
        settings = Settings.from_mapping(
            {
                "DATABASE_URL": url,
                "VAR_DIR": str(workdir),
                "SECRET_KEY": "bench-secret-key-0123456789",
                "TWILIO_ACCOUNT_SID": "AC" + "b" * 32,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_SMS_FROM": "+15005550006",
                "PUBLIC_URL": PUBLIC_URL,
                "ANDROID_GATEWAY_PHONES": "p1=http://127.0.0.1:9,sms,bench-password",
                "ANDROID_GATEWAY_SIGNING_KEY": "bench-signing-key",
                "LOG_LEVEL": "WARNING",
            }
        )
        runtime = Runtime(settings, huey=make_huey(settings))
        client = create_app(settings, runtime).test_client()
        validator = RequestValidator(AUTH_TOKEN)
        times: dict[str, list[float]] = {"android": [], "twilio": []}
        errors = {"android": 0, "twilio": 0}
        try:
            for i in range(args.count):
                number = f"+97798{i:08d}"
                text = "सामाजिक परिचालन भनेको के हो" if i % 2 else "what is social mobilization"
                webhook = phone.received(text, number)
                start = time.perf_counter()
                answer = client.post(
                    "/webhooks/android/events", data=webhook.body, headers=webhook.headers
                )
                times["android"].append(time.perf_counter() - start)
                errors["android"] += answer.status_code != 200
                form = {
                    "MessageSid": "SM" + uuid.uuid4().hex,
                    "From": f"+97797{i:08d}",
                    "To": "+15005550006",
                    "Body": text,
                    "NumMedia": "0",
                }
                path = "/webhooks/twilio/messages"
                signature = validator.compute_signature(PUBLIC_URL + path, form)
                start = time.perf_counter()
                answer = client.post(path, data=form, headers={"X-Twilio-Signature": signature})
                times["twilio"].append(time.perf_counter() - start)
                errors["twilio"] += answer.status_code != 200
        finally:
            runtime.close()
    results = {
        name: {
            "count": len(values),
            "errors": errors[name],
            "p50_ms": round(percentile(values, 50) * 1000, 2),
            "p99_ms": round(percentile(values, 99) * 1000, 2),
            "max_ms": round(max(values) * 1000, 2),
        }
        for name, values in times.items()
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
