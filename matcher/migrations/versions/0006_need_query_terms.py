"""needs keep the terms of the text they ask with

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 23:00:00.000000

Existing rows start with NULL and their text is segmented when their matches are explained,
as before, until their next write stores the list.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('needs') as batch:
        batch.add_column(sa.Column('query_terms', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('needs') as batch:
        batch.drop_column('query_terms')
