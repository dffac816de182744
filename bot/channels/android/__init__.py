"""The Android SMS gateway ("SMS Gateway for Android", android-sms-gateway): phones with a
local SIM as one SMS provider, a pool (issue 11).

- `settings.py`: its settings (the phones, credentials, signing keys, pace).
- `api.py`: what the app's documentation and source say (endpoints, payloads, states,
  webhook events, the signature) and how each answer is classified.
- `pool.py`: the phones' shared health, turns, pace and handoffs in doubt.
- `sender.py`: the outbound adapter over the pool, a `ChannelAdapter`.
- `webhook.py`: the signed webhooks (inbound SMS, delivery statuses), a Flask blueprint.
- `statuses.py`: the app's states and status events mapped to ours.
- `provider.py`: the provider for bot/channels/registry.py.
- testkit/fake_android.py is its local fake; tests/channels/android/ its tests.
"""
