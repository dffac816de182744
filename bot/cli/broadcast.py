"""`bot broadcast`: create, preview, send, schedule, cancel, list."""

from __future__ import annotations

from typing import Any

import click

from bot.cli.common import service


@click.group()
def broadcast() -> None:
    """Awareness broadcasts: create, preview, send, schedule, cancel, list."""


@broadcast.command("create")
@click.option("--title", required=True)
@click.option("--en", "body_en", required=True, help="the message in English")
@click.option("--ne", "body_ne", required=True, help="the message in Nepali")
@click.option("--group", "groups", multiple=True, help="only contacts in this group (repeatable)")
@click.option("--language", "languages", multiple=True, type=click.Choice(["en", "ne"]))
@click.option("--channel", "channels", multiple=True, type=click.Choice(["sms", "whatsapp"]))
@click.option("--district")
@click.option("--municipality")
@click.option("--ward")
@click.option("--at", "at", help="send once at this local time, e.g. '2026-12-06 08:00'")
@click.option("--every", help="recurring: 'sun 08:00', 'daily 07:00' or a crontab line")
@click.option("--survey", "survey_key", help="invite recipients into this survey")
@click.option("--template-en", help="approved WhatsApp template (ContentSid) in English")
@click.option("--template-ne", help="approved WhatsApp template (ContentSid) in Nepali")
@click.option("--by", "created_by", default="cli", show_default=True)
def broadcast_create(**options: Any) -> None:
    """Creates a draft broadcast and shows its preview (send or schedule it next)."""
    from datetime import datetime

    from bot.broadcasts.audience import Audience
    from bot.broadcasts.service import Draft, create, preview_of

    with service() as runtime:
        audience = Audience.from_json(
            {
                "groups": list(options["groups"]),
                "languages": list(options["languages"]),
                "channels": list(options["channels"]),
                "district": options["district"],
                "municipality": options["municipality"],
                "ward": options["ward"],
            }
        )
        send_at = None
        if options["at"]:
            try:
                local = datetime.fromisoformat(options["at"])
            except ValueError:
                raise click.BadParameter(f"--at: not a date and time: {options['at']!r}") from None
            send_at = local if local.tzinfo else local.replace(tzinfo=runtime.settings.zone)
        schedule = "once" if send_at else "recurring" if options["every"] else "now"
        draft = Draft(
            title=options["title"],
            body_en=options["body_en"],
            body_ne=options["body_ne"],
            audience=audience,
            schedule=schedule,
            send_at=send_at,
            every=options["every"],
            survey_key=options["survey_key"],
            template_en=options["template_en"],
            template_ne=options["template_ne"],
        )
        broadcast_id = create(runtime.broadcasts, draft, created_by=options["created_by"])
        click.echo(f"broadcast {broadcast_id} created ({schedule}); preview:")
        for line in preview_of(runtime.broadcasts, broadcast_id).lines():
            click.echo(f"  {line}")
        verb = "send" if schedule == "now" else "schedule"
        click.echo(f"confirm with: bot broadcast {verb} {broadcast_id}")


@broadcast.command("preview")
@click.argument("broadcast_id", type=int)
def broadcast_preview(broadcast_id: int) -> None:
    """Recipients by channel and language, segments, cost, duration, who is skipped and why."""
    from bot.broadcasts.service import preview_of

    with service() as runtime:
        for line in preview_of(runtime.broadcasts, broadcast_id).lines():
            click.echo(line)


def _confirm(broadcast_id: int, schedules: tuple[str, ...]) -> None:
    from bot.broadcasts.service import confirm, get

    with service() as runtime:
        row = get(runtime.broadcasts, broadcast_id)
        if row.schedule not in schedules:
            hint = "send" if row.schedule == "now" else "schedule"
            raise click.ClickException(
                f"broadcast {broadcast_id} is '{row.schedule}': use bot broadcast {hint}"
            )
        click.echo(f"broadcast {broadcast_id}: {confirm(runtime.broadcasts, broadcast_id)}")


@broadcast.command("send")
@click.argument("broadcast_id", type=int)
def broadcast_send(broadcast_id: int) -> None:
    """Sends a draft now (the worker plans and sends it at the configured pace)."""
    _confirm(broadcast_id, ("now",))


@broadcast.command("schedule")
@click.argument("broadcast_id", type=int)
def broadcast_schedule(broadcast_id: int) -> None:
    """Hands a draft with --at or --every to the scheduler."""
    _confirm(broadcast_id, ("once", "recurring"))


@broadcast.command("cancel")
@click.argument("broadcast_id", type=int)
def broadcast_cancel(broadcast_id: int) -> None:
    """Cancels: nothing not yet handed to Twilio is sent."""
    from bot.broadcasts.service import cancel

    with service() as runtime:
        canceled = cancel(runtime.broadcasts, broadcast_id)
    click.echo(f"broadcast {broadcast_id} canceled; {canceled} messages not sent")


@broadcast.command("list")
@click.option("--limit", default=20, show_default=True, type=int)
def broadcast_list(limit: int) -> None:
    """Broadcasts, newest first, with their delivery funnel and failure reasons."""
    from bot.broadcasts.service import funnel, list_broadcasts

    with service() as runtime:
        for row in list_broadcasts(runtime.broadcasts, limit):
            when = row.cron or (row.send_at.isoformat() if row.send_at else "now")
            click.echo(f"{row.id:>5}  {row.status:<9} {row.schedule:<9} {when:<22} {row.title}")
            result = funnel(runtime.broadcasts, row.id)
            if result.total:
                stages = "  ".join(
                    f"{s} {result.statuses[s]}"
                    for s in (
                        "planned",
                        "dispatching",
                        "queued",
                        "sent",
                        "delivered",
                        "read",
                        "failed",
                        "undelivered",
                        "skipped",
                        "canceled",
                    )
                    if result.statuses[s]
                )
                click.echo(f"       {result.total} messages: {stages}")
            if result.errors:
                codes = ", ".join(f"{code}: {n}" for code, n in result.errors.most_common())
                click.echo(f"       failures by Twilio error code: {codes}")
            if result.skipped:
                reasons = ", ".join(f"{r}: {n}" for r, n in result.skipped.most_common())
                click.echo(f"       skipped: {reasons}")
