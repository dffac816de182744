"""data protection: kept opt-outs of erased people, survey tallies, retention marks

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 04:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import bot.db.models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kept_opt_outs',
    sa.Column('phone_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', bot.db.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('phone_hash', name=op.f('pk_kept_opt_outs'))
    )
    op.create_table('survey_tallies',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('survey_key', sa.String(length=48), nullable=False),
    sa.Column('version', sa.String(length=16), nullable=False),
    sa.Column('started_on', sa.Date(), nullable=False),
    sa.Column('question', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_tallies')),
    sa.UniqueConstraint('survey_key', 'version', 'started_on', 'question', 'value', name=op.f('uq_survey_tallies_survey_key_version_started_on_question_value'))
    )
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('redacted_at', bot.db.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.drop_column('redacted_at')

    op.drop_table('survey_tallies')
    op.drop_table('kept_opt_outs')
