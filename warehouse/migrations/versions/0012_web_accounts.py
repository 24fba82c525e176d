"""web accounts: office accounts of the served site, their sessions, and the audit log of every
sign-in and action

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 18:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_users',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('username', sa.String(64), nullable=False, unique=True),
        sa.Column('office', sa.String(80), nullable=False),
        sa.Column('display_name', sa.String(64), nullable=True),
        sa.Column('password_hash', sa.String(200), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(64), nullable=False),
        sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('disabled_by', sa.String(64), nullable=True),
    )
    op.create_table(
        'web_sessions',
        sa.Column('token_hash', sa.String(64), primary_key=True),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_web_sessions_user', 'web_sessions', ['user_id'])
    op.create_table(
        'audit_log',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('username', sa.String(64), nullable=False),
        sa.Column('office', sa.String(80), nullable=True),
        sa.Column('action', sa.String(32), nullable=False),
        sa.Column('target', sa.String(120), nullable=True),
        sa.Column('ip', sa.String(64), nullable=True),
        sa.Column('detail', sa.JSON(), nullable=True),
    )
    op.create_index('ix_audit_log_user', 'audit_log', ['username', 'at'])


def downgrade() -> None:
    op.drop_index('ix_audit_log_user', 'audit_log')
    op.drop_table('audit_log')
    op.drop_index('ix_web_sessions_user', 'web_sessions')
    op.drop_table('web_sessions')
    op.drop_table('web_users')
