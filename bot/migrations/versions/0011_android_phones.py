"""android gateway: the pool's phones and the messages handed to them (issue 11)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 05:40:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'android_phones',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('live', sa.Boolean(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.String(length=300), nullable=True),
        sa.Column('out_since', sa.DateTime(), nullable=True),
        sa.Column('next_probe_at', sa.DateTime(), nullable=True),
        sa.Column('last_used_at', sa.DateTime(), nullable=True),
        sa.Column('last_ok_at', sa.DateTime(), nullable=True),
        sa.Column('sent', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_android_phones')),
    )
    op.create_table(
        'android_handoffs',
        sa.Column('gateway_id', sa.String(length=40), nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('gateway_id', name=op.f('pk_android_handoffs')),
    )
    op.create_index(
        'ix_android_handoffs_digest_state', 'android_handoffs', ['digest', 'state'], unique=False
    )


def downgrade() -> None:
    op.drop_index('ix_android_handoffs_digest_state', table_name='android_handoffs')
    op.drop_table('android_handoffs')
    op.drop_table('android_phones')
