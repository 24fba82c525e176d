"""light events (红黄灯)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 14:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('light_events',
    sa.Column('ticket_id', sa.String(length=64), nullable=False),
    sa.Column('event', sa.String(length=12), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ds', sa.Date(), nullable=False),
    sa.Column('detail', sa.String(length=16), nullable=True),
    sa.Column('city_code', sa.String(length=6), nullable=False),
    sa.Column('district_code', sa.String(length=6), nullable=True),
    sa.Column('department', sa.String(length=64), nullable=True),
    sa.Column('category_l2', sa.String(length=80), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id', 'event', 'level')
    )
    with op.batch_alter_table('light_events', schema=None) as batch_op:
        batch_op.create_index('ix_light_events_ds', ['ds', 'event'], unique=False)


def downgrade() -> None:
    op.drop_table('light_events')
