"""channel failover: each route's health and its events (issue 11)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 05:45:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'route_health',
        sa.Column('route', sa.String(length=48), nullable=False),
        sa.Column('up', sa.Boolean(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('since', sa.DateTime(), nullable=False),
        sa.Column('next_probe_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.String(length=300), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('route', name=op.f('pk_route_health')),
    )
    op.create_table(
        'route_events',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('route', sa.String(length=48), nullable=False),
        sa.Column('to_route', sa.String(length=48), nullable=True),
        sa.Column('outage', sa.DateTime(), nullable=True),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('detail', sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_route_events')),
        sa.UniqueConstraint(
            'kind', 'route', 'to_route', 'outage',
            name=op.f('uq_route_events_kind_route_to_route_outage'),
        ),
    )
    op.create_index(
        op.f('ix_route_events_created_at'), 'route_events', ['created_at'], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_route_events_created_at'), table_name='route_events')
    op.drop_table('route_events')
    op.drop_table('route_health')
