"""status reports: room for longer provider statuses (Twilio's "partially_delivered")

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 04:05:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('message_status_events', schema=None) as batch_op:
        batch_op.alter_column(
            'status', existing_type=sa.String(length=16), type_=sa.String(length=32),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('message_status_events', schema=None) as batch_op:
        batch_op.alter_column(
            'status', existing_type=sa.String(length=32), type_=sa.String(length=16),
            existing_nullable=False,
        )
