"""Twilio SMS and WhatsApp: everything about this provider in one place (issue 11).

- `provider.py`: `PROVIDER`, what the rest of the service knows about Twilio
  (bot/channels/registry.py).
- `sender.py`: the outbound adapter, through the official `twilio` library's Messages API.
- `webhook.py`: the inbound-message and status-callback URLs (/webhooks/twilio/messages and
  /webhooks/twilio/status): signature check, parsing, duplicates by MessageSid.
- `statuses.py`: Twilio's message statuses mapped to ours.
- `errors.py`: Twilio's error codes and what each means for the contact.
- testkit/fake_twilio.py is its local fake; tests/webhooks/ and tests/channels/twilio/ its
  tests.
"""
