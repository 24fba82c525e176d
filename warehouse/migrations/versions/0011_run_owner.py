"""run owner: the host and process id of each pipeline run, so that a run left "running" by a
killed process can be told from one still at work and marked abandoned

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 23:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pipeline_runs') as b:
        b.add_column(sa.Column('host', sa.String(128), nullable=True))
        b.add_column(sa.Column('pid', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pipeline_runs') as b:
        b.drop_column('pid')
        b.drop_column('host')
