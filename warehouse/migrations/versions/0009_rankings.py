"""monthly ranking of cities and districts (赛马)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 16:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rankings',
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('level', sa.String(length=10), nullable=False),
    sa.Column('scope', sa.String(length=6), nullable=False),
    sa.Column('unit_code', sa.String(length=6), nullable=False),
    sa.Column('group_key', sa.String(length=24), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=True),
    sa.Column('group_size', sa.Integer(), nullable=False),
    sa.Column('composite', sa.Float(), nullable=True),
    sa.Column('rank_prev', sa.Integer(), nullable=True),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('notes', sa.JSON(), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('month', 'level', 'scope', 'unit_code')
    )
    # the month's closed and due tickets, read by the ranking without a scan of the whole history
    op.create_index('ix_tickets_closed_at', 'tickets', ['closed_at'])
    op.create_index('ix_tickets_deadline_at', 'tickets', ['deadline_at'])


def downgrade() -> None:
    op.drop_index('ix_tickets_deadline_at', 'tickets')
    op.drop_index('ix_tickets_closed_at', 'tickets')
    op.drop_table('rankings')
