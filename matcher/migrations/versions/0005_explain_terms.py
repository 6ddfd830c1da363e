"""needs and outcomes keep the terms their explanations compare with

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 07:00:00.000000

Existing rows start with NULL and are segmented when explained, as before,
until their next write stores the list.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('needs', 'outcomes'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('explain_terms', sa.JSON(), nullable=True))


def downgrade() -> None:
    for table in ('needs', 'outcomes'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('explain_terms')
