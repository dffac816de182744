"""The channel-agnostic core: message types and the conversation handler.

Nothing in this package imports Flask, Twilio or the database.
"""
