"""Delivery reports from Sparrow SMS: there are none to map.

Sparrow's SMS documentation (docs.sparrowsms.com, sparrowsms/apidocs) describes no delivery
report or callback for SMS (it documents them only for Viber). A send's last status is
therefore the one the sender records when Sparrow accepts it: "sent" (`SENT_STATUS`), and
`SparrowChannel.abilities.status_callbacks` is False. Error codes, which Sparrow does
document, are classified in api.py (`ERRORS`, `BAD_NUMBER`).
"""

from __future__ import annotations

from bot.core.status import MessageStatus

SENT_STATUS = MessageStatus.SENT
DELIVERY_REPORTS = False
