"""The first registry schema: cases, their LSH bands, observations, incidents, links, replays,
history and artifacts; full-text search (SQLite FTS5 table, PostgreSQL tsvector + GIN).

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = lambda name, **kw: sa.Column(name, sa.Text, nullable=False, server_default="", **kw)
    op.create_table(
        "cases",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("finding_id", sa.String(64), unique=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("mode", sa.String(8), nullable=False, index=True),
        sa.Column("severity", sa.String(16), nullable=False, index=True),
        text("rationale"), text("summary"), text("remediation"),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("source", sa.String(16), nullable=False),
        text("system", index=True), text("model"), text("version"), text("target"), text("data"),
        sa.Column("check_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("seed", sa.Integer),
        sa.Column("budget", sa.Integer),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("artifacts", sa.JSON, nullable=False),
        sa.Column("refs", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("atlas", sa.JSON, nullable=False),
        sa.Column("avid", sa.JSON, nullable=False),
        text("added_by"),
        sa.Column("created_at", sa.String(32), nullable=False, index=True),
        sa.Column("updated_at", sa.String(32), nullable=False, index=True),
        sa.Column("signature", sa.JSON, nullable=False),
        sa.Column("search_text", sa.Text, nullable=False),
    )
    op.create_table(
        "case_bands",
        sa.Column("case_id", sa.String(16), primary_key=True),
        sa.Column("band", sa.Integer, primary_key=True),
        sa.Column("bucket", sa.String(16), nullable=False),
    )
    op.create_index("ix_case_bands_bucket", "case_bands", ["bucket"])
    op.create_table(
        "observations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(16), nullable=False, index=True),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("matched_by", sa.String(16), nullable=False),
        sa.Column("finding_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("similarity", sa.JSON),
        sa.Column("metrics", sa.JSON, nullable=False),
        text("source"), text("added_by"),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(16), primary_key=True),
        text("external_id"),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("raw", sa.JSON, nullable=False),
        sa.Column("triage", sa.JSON, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("primary_mode", sa.String(8), nullable=False, server_default=""),
        text("added_by"),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "links",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source_kind", sa.String(16), nullable=False),
        sa.Column("source_id", sa.String(16), nullable=False, index=True),
        sa.Column("target_kind", sa.String(16), nullable=False),
        sa.Column("target_id", sa.String(16), nullable=False, index=True),
        sa.Column("relation", sa.String(32), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.UniqueConstraint("source_kind", "source_id", "target_kind", "target_id", "relation", name="uq_links"),
    )
    op.create_table(
        "replays",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(16), nullable=False, index=True),
        sa.Column("at", sa.String(32), nullable=False),
        text("target"), text("data"),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("replayed_status", sa.String(16), nullable=False, server_default=""),
        sa.Column("metrics", sa.JSON, nullable=False),
        text("reason"), text("added_by"),
    )
    op.create_table(
        "history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(16), nullable=False, index=True),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        text("added_by"),
    )
    op.create_table(
        "artifacts",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("media_type", sa.String(64), nullable=False, server_default="application/octet-stream"),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # 'simple': no stemming, as SQLite's unicode61 tokenizer, so both back ends find the same cases.
        op.execute("ALTER TABLE cases ADD COLUMN search_vector tsvector "
                   "GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED")
        op.execute("CREATE INDEX ix_cases_search ON cases USING GIN (search_vector)")
    else:
        op.execute("CREATE VIRTUAL TABLE cases_fts USING fts5(case_id UNINDEXED, body)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE cases_fts")
    for name in ("artifacts", "history", "replays", "links", "incidents", "observations", "case_bands", "cases"):
        op.drop_table(name)
