"""anomalies

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 06:23:38.385649
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('anomalies',
    sa.Column('ds', sa.Date(), nullable=False),
    sa.Column('series_id', sa.String(length=120), nullable=False),
    sa.Column('detector', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('region_level', sa.String(length=10), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('category_level', sa.String(length=3), nullable=False),
    sa.Column('category_code', sa.String(length=80), nullable=False),
    sa.Column('observed', sa.Float(), nullable=False),
    sa.Column('expected', sa.Float(), nullable=True),
    sa.Column('lower', sa.Float(), nullable=True),
    sa.Column('upper', sa.Float(), nullable=True),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('severity', sa.String(length=8), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('ds', 'series_id', 'detector')
    )
    with op.batch_alter_table('anomalies', schema=None) as batch_op:
        batch_op.create_index('ix_anomalies_ds', ['ds', 'severity'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('anomalies', schema=None) as batch_op:
        batch_op.drop_index('ix_anomalies_ds')

    op.drop_table('anomalies')

