"""initial warehouse

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 04:32:41.287492
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('daily_counts',
    sa.Column('ds', sa.Date(), nullable=False),
    sa.Column('region_level', sa.String(length=10), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('category_level', sa.String(length=3), nullable=False),
    sa.Column('category_code', sa.String(length=80), nullable=False),
    sa.Column('province_code', sa.String(length=6), nullable=False),
    sa.Column('city_code', sa.String(length=6), nullable=True),
    sa.Column('n_tickets', sa.Integer(), nullable=False),
    sa.Column('n_closed', sa.Integer(), nullable=False),
    sa.Column('n_overdue', sa.Integer(), nullable=False),
    sa.Column('n_repeat', sa.Integer(), nullable=False),
    sa.Column('n_rated', sa.Integer(), nullable=False),
    sa.Column('n_unsatisfied', sa.Integer(), nullable=False),
    sa.Column('n_resolved', sa.Integer(), nullable=False),
    sa.Column('aggregated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('ds', 'region_level', 'region_code', 'category_level', 'category_code')
    )
    with op.batch_alter_table('daily_counts', schema=None) as batch_op:
        batch_op.create_index('ix_daily_counts_series',
                              ['region_level', 'region_code', 'category_level', 'category_code', 'ds'], unique=False)

    op.create_table('ingest_watermarks',
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('last_logical_date', sa.Date(), nullable=True),
    sa.Column('max_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('source')
    )
    op.create_table('pipeline_runs',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('logical_date', sa.Date(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('params', sa.JSON(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('run_id')
    )
    with op.batch_alter_table('pipeline_runs', schema=None) as batch_op:
        batch_op.create_index('ix_pipeline_runs_stage', ['stage', 'started_at'], unique=False)

    op.create_table('quarantine',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('source_file', sa.String(length=512), nullable=True),
    sa.Column('source_row', sa.Integer(), nullable=True),
    sa.Column('ticket_id', sa.String(length=64), nullable=True),
    sa.Column('field', sa.String(length=64), nullable=True),
    sa.Column('reason_code', sa.String(length=48), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('raw', sa.Text(), nullable=True),
    sa.Column('quarantined_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index('ix_quarantine_reason', ['reason_code'], unique=False)
        batch_op.create_index('ix_quarantine_run', ['run_id'], unique=False)

    op.create_table('tickets',
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
    sa.Column('ingest_run_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('ticket_id')
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_city_date', ['city_code', 'received_date'], unique=False)
        batch_op.create_index('ix_tickets_received_date', ['received_date'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_received_date')
        batch_op.drop_index('ix_tickets_city_date')

    op.drop_table('tickets')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index('ix_quarantine_run')
        batch_op.drop_index('ix_quarantine_reason')

    op.drop_table('quarantine')
    with op.batch_alter_table('pipeline_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_pipeline_runs_stage')

    op.drop_table('pipeline_runs')
    op.drop_table('ingest_watermarks')
    with op.batch_alter_table('daily_counts', schema=None) as batch_op:
        batch_op.drop_index('ix_daily_counts_series')

    op.drop_table('daily_counts')
    
