"""daily_counts: index for one city's series of a level over a period

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_daily_counts_city", "daily_counts", ["region_level", "category_level", "city_code", "ds"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_daily_counts_city", table_name="daily_counts")
