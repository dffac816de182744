"""dashboard: conversation-list indexes, message search, NLU examples and training runs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 01:10:00.000000
"""
from alembic import op
import sqlalchemy as sa
import bot.db.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        # Trigram indexes (contrib, a trusted extension: the database owner may create it).
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')

    op.create_table('nlu_examples',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('text', sa.String(length=500), nullable=False),
    sa.Column('intent', sa.String(length=64), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('source_message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', bot.db.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['source_message_id'], ['messages.id'], name=op.f('fk_nlu_examples_source_message_id_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nlu_examples')),
    sa.UniqueConstraint('source_message_id', name=op.f('uq_nlu_examples_source_message_id'))
    )
    with op.batch_alter_table('nlu_examples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nlu_examples_intent'), ['intent'], unique=False)

    op.create_table('nlu_training_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('slot', sa.String(length=8), nullable=True),
    sa.Column('stage', sa.String(length=64), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('model_name', sa.String(length=100), nullable=False),
    sa.Column('model_path', sa.String(length=500), nullable=True),
    sa.Column('examples', sa.Integer(), nullable=False),
    sa.Column('log', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', bot.db.models.UTCDateTime(), nullable=False),
    sa.Column('started_at', bot.db.models.UTCDateTime(), nullable=True),
    sa.Column('heartbeat_at', bot.db.models.UTCDateTime(), nullable=True),
    sa.Column('finished_at', bot.db.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nlu_training_runs')),
    sa.UniqueConstraint('slot', name=op.f('uq_nlu_training_runs_slot'))
    )

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_last_inbound_at_id', ['last_inbound_at', 'id'], unique=False)

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_contact_id_intent', ['contact_id', 'intent'], unique=False)
        batch_op.create_index(
            'ix_messages_body_trgm', ['body'], unique=False,
            postgresql_using='gin', postgresql_ops={'body': 'gin_trgm_ops'},
            postgresql_where=sa.text("direction = 'in'"),
            sqlite_where=sa.false(),
        )


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_body_trgm')
        batch_op.drop_index('ix_messages_contact_id_intent')

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_last_inbound_at_id')

    op.drop_table('nlu_training_runs')
    with op.batch_alter_table('nlu_examples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nlu_examples_intent'))

    op.drop_table('nlu_examples')
