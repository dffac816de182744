"""What every provider's webhook shares: `inbound.store`, the step that stores an inbound
message and counts it. Each provider's own webhook lives in its folder
(bot/channels/<name>/webhook.py), found through bot/channels/registry.py."""
