"""proposals (每月一题)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 13:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('proposals',
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('scope', sa.String(length=6), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('model_choice', sa.String(length=120), nullable=True),
    sa.Column('chosen', sa.String(length=120), nullable=True),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('candidates', sa.JSON(), nullable=False),
    sa.Column('weights', sa.JSON(), nullable=False),
    sa.Column('override_by', sa.String(length=64), nullable=True),
    sa.Column('override_reason', sa.Text(), nullable=True),
    sa.Column('overridden_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('reports', sa.JSON(), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('month', 'scope')
    )


def downgrade() -> None:
    op.drop_table('proposals')
