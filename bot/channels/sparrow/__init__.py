"""Sparrow SMS (Nepal): everything about this provider in one place (issue 11).

- `api.py`: what Sparrow's documentation says (endpoints, parameters, error codes) and how
  each error code is classified; the credit balance.
- `sender.py`: the outbound adapter (`SendSms` over HTTP), a `ChannelAdapter`.
- `webhook.py`: the inbound URL Sparrow calls for the short code's keyword (a Flask
  blueprint: path token, optional source-address allow list, parsing, duplicates).
- `statuses.py`: delivery reports (Sparrow documents none for SMS).
- `settings.py`: its settings (SPARROW_*), parsed with the service's at start.
- testkit/fake_sparrow.py is its local fake; tests/channels/sparrow/ its tests.
"""
