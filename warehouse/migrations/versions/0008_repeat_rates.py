"""repeat rates (同人同事)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 14:55:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('repeat_rates',
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('region_level', sa.String(length=10), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('category_code', sa.String(length=80), nullable=False),
    sa.Column('city_code', sa.String(length=6), nullable=False),
    sa.Column('n_tickets', sa.Integer(), nullable=False),
    sa.Column('n_with_caller', sa.Integer(), nullable=False),
    sa.Column('n_repeat', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('month', 'region_level', 'region_code', 'category_code')
    )


def downgrade() -> None:
    op.drop_table('repeat_rates')
