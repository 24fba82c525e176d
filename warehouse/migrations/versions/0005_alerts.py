"""alerts, alert events, silences, notifications outbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:13:04.329010
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('alert_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ds', sa.Date(), nullable=True),
    sa.Column('fingerprint', sa.String(length=32), nullable=True),
    sa.Column('silence_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=24), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alert_events', schema=None) as batch_op:
        batch_op.create_index('ix_alert_events_fingerprint', ['fingerprint', 'ds'], unique=False)
        batch_op.create_index('ix_alert_events_silence', ['silence_id'], unique=False)

    op.create_table('alerts',
    sa.Column('fingerprint', sa.String(length=32), nullable=False),
    sa.Column('series_id', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('region_level', sa.String(length=10), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('city_code', sa.String(length=6), nullable=True),
    sa.Column('category_level', sa.String(length=3), nullable=False),
    sa.Column('category_code', sa.String(length=80), nullable=False),
    sa.Column('severity', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('last_seen', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=True),
    sa.Column('observed', sa.Float(), nullable=False),
    sa.Column('expected', sa.Float(), nullable=True),
    sa.Column('lower', sa.Float(), nullable=True),
    sa.Column('upper', sa.Float(), nullable=True),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('detectors', sa.String(length=160), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=True),
    sa.Column('samples', sa.JSON(), nullable=True),
    sa.Column('silenced_by', sa.Integer(), nullable=True),
    sa.Column('inhibited_by', sa.String(length=32), nullable=True),
    sa.Column('ack_by', sa.String(length=64), nullable=True),
    sa.Column('ack_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ack_verdict', sa.String(length=16), nullable=True),
    sa.Column('ack_comment', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('fingerprint')
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_state', ['state', 'last_seen'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dedup_key', sa.String(length=64), nullable=False),
    sa.Column('ds', sa.Date(), nullable=False),
    sa.Column('receiver', sa.String(length=120), nullable=False),
    sa.Column('receiver_name', sa.String(length=120), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('channel_type', sa.String(length=16), nullable=False),
    sa.Column('group_key', sa.String(length=255), nullable=False),
    sa.Column('firing', sa.JSON(), nullable=False),
    sa.Column('resolved', sa.JSON(), nullable=False),
    sa.Column('severities', sa.JSON(), nullable=False),
    sa.Column('lang', sa.String(length=4), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedup_key')
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_group', ['receiver', 'group_key', 'ds'], unique=False)
        batch_op.create_index('ix_notifications_status', ['status', 'next_attempt_at'], unique=False)

    op.create_table('silences',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('matchers', sa.JSON(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_on_resolve', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expired_by', sa.String(length=64), nullable=True),
    sa.Column('expire_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )



def downgrade() -> None:

    op.drop_table('silences')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_status')
        batch_op.drop_index('ix_notifications_group')

    op.drop_table('notifications')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_state')

    op.drop_table('alerts')
    with op.batch_alter_table('alert_events', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_events_silence')
        batch_op.drop_index('ix_alert_events_fingerprint')

    op.drop_table('alert_events')

