"""calibrated scores: the tail probability, its surprise, the threshold the budget set, the
excess in tickets and the series' days on record, beside each anomaly; surprise and days on
record beside each alert (for the wording offices read)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 14:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('anomalies') as b:
        b.add_column(sa.Column('p_value', sa.Float(), nullable=True))
        b.add_column(sa.Column('surprise', sa.Float(), nullable=True))
        b.add_column(sa.Column('threshold', sa.Float(), nullable=True))
        b.add_column(sa.Column('excess', sa.Float(), nullable=True))
        b.add_column(sa.Column('history_days', sa.Integer(), nullable=True))
    with op.batch_alter_table('alerts') as b:
        b.add_column(sa.Column('surprise', sa.Float(), nullable=True))
        b.add_column(sa.Column('history_days', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alerts') as b:
        b.drop_column('history_days')
        b.drop_column('surprise')
    with op.batch_alter_table('anomalies') as b:
        for c in ('history_days', 'excess', 'threshold', 'surprise', 'p_value'):
            b.drop_column(c)
