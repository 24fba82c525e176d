"""data quality: staging, verdicts, day flags

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 05:18:27.741429
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('dq_day_flags',
    sa.Column('ds', sa.Date(), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('check_name', sa.String(length=48), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('ds', 'region_code', 'check_name')
    )
    op.create_table('dq_verdicts',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('suite', sa.String(length=32), nullable=False),
    sa.Column('logical_date', sa.Date(), nullable=False),
    sa.Column('success', sa.Boolean(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('quarantined', sa.Integer(), nullable=False),
    sa.Column('failed', sa.JSON(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.Column('docs_path', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'suite')
    )
    with op.batch_alter_table('dq_verdicts', schema=None) as batch_op:
        batch_op.create_index('ix_dq_verdicts_date', ['logical_date'], unique=False)

    op.create_table('staged_tickets',
    sa.Column('ticket_id', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_date', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('request_type', sa.String(length=16), nullable=True),
    sa.Column('province_code', sa.String(length=6), nullable=False),
    sa.Column('city_code', sa.String(length=6), nullable=False),
    sa.Column('district_code', sa.String(length=6), nullable=True),
    sa.Column('street_code', sa.String(length=32), nullable=True),
    sa.Column('category_l1', sa.String(length=48), nullable=False),
    sa.Column('category_l2', sa.String(length=80), nullable=False),
    sa.Column('category_raw', sa.String(length=255), nullable=True),
    sa.Column('content', sa.Text(), nullable=True),
    sa.Column('caller_key', sa.String(length=32), nullable=True),
    sa.Column('department', sa.String(length=64), nullable=True),
    sa.Column('urgency', sa.String(length=16), nullable=True),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('is_repeat', sa.Boolean(), nullable=False),
    sa.Column('satisfaction', sa.String(length=24), nullable=True),
    sa.Column('resolved', sa.Boolean(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ingest_run_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id', 'ingest_run_id')
    )



def downgrade() -> None:

    op.drop_table('staged_tickets')
    with op.batch_alter_table('dq_verdicts', schema=None) as batch_op:
        batch_op.drop_index('ix_dq_verdicts_date')

    op.drop_table('dq_verdicts')
    op.drop_table('dq_day_flags')

