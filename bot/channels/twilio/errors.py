"""Twilio's error codes and what each means for the message and the contact.

Source: Twilio's error dictionary (twilio.com/docs/api/errors/<code>). A code reaches us in
the REST API's answer to a send (`TwilioRestException.code`) or later in a status callback
(`ErrorCode`). Only the meanings the service acts on are listed; any other code is a
failure of that one message (or a retry, when the HTTP status says so: 429, 5xx).
"""

from __future__ import annotations

from bot.channels.base import ErrorMeaning

NAME = "twilio"  # the provider's name (Provider.name; messages.provider when it is named)
OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient": the person replied STOP

ERRORS: dict[int, tuple[str, ErrorMeaning]] = {
    OPTED_OUT: ("the recipient replied STOP to this sender", ErrorMeaning.OPTED_OUT),
    21211: ("invalid 'To' phone number", ErrorMeaning.BAD_NUMBER),
    21614: ("'To' number is not a valid mobile number", ErrorMeaning.BAD_NUMBER),
    21635: ("'To' number cannot be a landline", ErrorMeaning.BAD_NUMBER),
    30005: ("unknown destination handset", ErrorMeaning.BAD_NUMBER),
    30006: ("landline or unreachable carrier", ErrorMeaning.BAD_NUMBER),
    63024: ("invalid message recipient (WhatsApp)", ErrorMeaning.BAD_NUMBER),
    # WhatsApp unreachable for everyone (Twilio maps WhatsApp's 500/1011/1014/1023/1025 to
    # 63012; twilio.com/docs/whatsapp/api/error-code-mapping), or our sender cut off.
    63012: ("the channel provider (WhatsApp) had an internal error", ErrorMeaning.UNREACHABLE),
    63001: ("the channel could not authenticate the request", ErrorMeaning.UNREACHABLE),
    63007: ("no channel with this 'From' address", ErrorMeaning.UNREACHABLE),
    20429: ("too many requests", ErrorMeaning.RETRY),
    30001: ("queue overflow", ErrorMeaning.RETRY),
}


def meaning(code: int | None) -> ErrorMeaning | None:
    """What Twilio's error `code` means; None for a code not in the table."""
    if code is None:
        return None
    entry = ERRORS.get(code)
    return entry[1] if entry else None
