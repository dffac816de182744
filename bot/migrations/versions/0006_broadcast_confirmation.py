"""broadcast confirmation: one-time code, approval of mobilizers' recurring broadcasts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 02:40:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('confirm_code_hash', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('approved_by', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.drop_column('approved_by')
        batch_op.drop_column('confirm_code_hash')
