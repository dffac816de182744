"""channel providers: the provider of each message and of a contact's last inbound message

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 04:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider', sa.String(length=32), nullable=True))
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_provider', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('last_provider')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('provider')
