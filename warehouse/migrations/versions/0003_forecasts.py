"""forecasts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 05:55:42.874856
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('forecasts',
    sa.Column('origin', sa.Date(), nullable=False),
    sa.Column('series_id', sa.String(length=120), nullable=False),
    sa.Column('ds', sa.Date(), nullable=False),
    sa.Column('region_level', sa.String(length=10), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('category_level', sa.String(length=3), nullable=False),
    sa.Column('category_code', sa.String(length=80), nullable=False),
    sa.Column('yhat', sa.Float(), nullable=False),
    sa.Column('yhat_lo_80', sa.Float(), nullable=False),
    sa.Column('yhat_hi_80', sa.Float(), nullable=False),
    sa.Column('yhat_lo_95', sa.Float(), nullable=False),
    sa.Column('yhat_hi_95', sa.Float(), nullable=False),
    sa.Column('model', sa.String(length=24), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('origin', 'series_id', 'ds')
    )
    with op.batch_alter_table('forecasts', schema=None) as batch_op:
        batch_op.create_index('ix_forecasts_series', ['series_id', 'ds'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('forecasts', schema=None) as batch_op:
        batch_op.drop_index('ix_forecasts_series')

    op.drop_table('forecasts')

