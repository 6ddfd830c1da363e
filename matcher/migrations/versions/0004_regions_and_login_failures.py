"""the region tree as a table; failed sign-ins for throttling

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00.000000
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# The tree the code held as a constant until now, written out here (not imported) so that this
# migration seeds the same rows whatever the code later becomes. Parents come before their children.
_SEED = [
    ("山东省", None, []),
    ("威海市", "山东省", []),
    ("烟台市", "山东省", []),
    ("青岛市", "山东省", []),
    ("济南市", "山东省", []),
    ("环翠区", "威海市", ["环翠"]),
    ("文登区", "威海市", ["文登"]),
    ("荣成市", "威海市", ["荣成"]),
    ("乳山市", "威海市", ["乳山"]),
    ("威海高区", "威海市", ["高区", "高技术产业开发区"]),
    ("威海经区", "威海市", ["经区", "经济技术开发区"]),
    ("威海临港区", "威海市", ["临港"]),
]


def upgrade() -> None:
    op.create_table('regions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('aliases', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['regions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_regions_parent_id'), ['parent_id'], unique=False)

    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_login_failures_key_at', ['key', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_failures_at'), ['at'], unique=False)

    regions = sa.table('regions', sa.column('id', sa.Integer), sa.column('name', sa.String),
                       sa.column('parent_id', sa.Integer), sa.column('aliases', sa.JSON),
                       sa.column('created_at', sa.DateTime(timezone=True)),
                       sa.column('updated_at', sa.DateTime(timezone=True)))
    conn = op.get_bind()
    now = datetime.now(timezone.utc)
    ids: dict[str, int] = {}
    for name, parent, aliases in _SEED:
        # One row at a time: each child needs its parent's id, which the database assigns.
        conn.execute(regions.insert().values(name=name, parent_id=ids.get(parent), aliases=aliases,
                                             created_at=now, updated_at=now))
        ids[name] = conn.execute(sa.select(regions.c.id).where(regions.c.name == name)).scalar_one()


def downgrade() -> None:
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_failures_at'))
        batch_op.drop_index('ix_login_failures_key_at')

    op.drop_table('login_failures')
    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_regions_parent_id'))

    op.drop_table('regions')
