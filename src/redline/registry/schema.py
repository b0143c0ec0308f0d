"""The registry's tables as SQLAlchemy Core objects, for queries.

The migrations in ``migrations/versions`` create them; a change here needs a new migration
(tests/registry/test_registry_migrations.py compares the two).
"""
from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

ID = 16  # case and incident ids: 12 hex characters, with room to grow

cases = Table(
    "cases", metadata,
    Column("id", String(ID), primary_key=True),
    # A finding's id when the case came from a scan; NULL otherwise (NULLs never collide).
    Column("finding_id", String(64), unique=True),
    Column("title", Text, nullable=False),
    Column("mode", String(8), nullable=False, index=True),
    Column("severity", String(16), nullable=False, index=True),
    Column("rationale", Text, nullable=False, default=""),
    Column("summary", Text, nullable=False, default=""),
    Column("remediation", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False, index=True),
    Column("source", String(16), nullable=False),
    Column("system", Text, nullable=False, default="", index=True),
    Column("model", Text, nullable=False, default=""),
    Column("version", Text, nullable=False, default=""),
    Column("target", Text, nullable=False, default=""),
    Column("data", Text, nullable=False, default=""),
    Column("check_id", String(64), nullable=False, default=""),
    Column("params", JSON, nullable=False),
    Column("seed", Integer),
    Column("budget", Integer),
    Column("metrics", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("artifacts", JSON, nullable=False),
    Column("refs", JSON, nullable=False),  # FailureCase.references ("references" is an SQL keyword)
    Column("tags", JSON, nullable=False),
    Column("atlas", JSON, nullable=False),
    Column("avid", JSON, nullable=False),
    Column("added_by", Text, nullable=False, default=""),
    Column("created_at", String(32), nullable=False, index=True),
    Column("updated_at", String(32), nullable=False, index=True),  # lists are newest first
    # What dedup and search read: the MinHash signature of the normalised text, and that text.
    Column("signature", JSON, nullable=False),
    Column("search_text", Text, nullable=False),
)

# Locality-sensitive hashing of the signatures: cases that share a band are dedup candidates.
case_bands = Table(
    "case_bands", metadata,
    Column("case_id", String(ID), primary_key=True),
    Column("band", Integer, primary_key=True),
    Column("bucket", String(16), nullable=False),
    Index("ix_case_bands_bucket", "bucket"),
)

# Every time a case is seen again (the same finding id, or near-identical content).
observations = Table(
    "observations", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(ID), nullable=False, index=True),
    Column("at", String(32), nullable=False),
    Column("matched_by", String(16), nullable=False),  # new | finding-id | content
    Column("finding_id", String(64), nullable=False, default=""),
    Column("similarity", JSON),
    Column("metrics", JSON, nullable=False),
    Column("source", Text, nullable=False, default=""),
    Column("added_by", Text, nullable=False, default=""),
)

incidents = Table(
    "incidents", metadata,
    Column("id", String(ID), primary_key=True),  # hash of the incident's content
    Column("external_id", Text, nullable=False, default=""),  # the YAML's own id, e.g. PRIV-2024-0088
    Column("title", Text, nullable=False),
    Column("raw", JSON, nullable=False),
    Column("triage", JSON, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("primary_mode", String(8), nullable=False, default=""),
    Column("added_by", Text, nullable=False, default=""),
    Column("created_at", String(32), nullable=False),
)

links = Table(
    "links", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_kind", String(16), nullable=False),  # case | incident
    Column("source_id", String(ID), nullable=False, index=True),
    Column("target_kind", String(16), nullable=False),
    Column("target_id", String(ID), nullable=False, index=True),
    Column("relation", String(32), nullable=False),
    Column("created_at", String(32), nullable=False),
    UniqueConstraint("source_kind", "source_id", "target_kind", "target_id", "relation", name="uq_links"),
)

replays = Table(
    "replays", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(ID), nullable=False, index=True),
    Column("at", String(32), nullable=False),
    Column("target", Text, nullable=False, default=""),
    Column("data", Text, nullable=False, default=""),
    Column("outcome", String(16), nullable=False),  # fixed | regressed | still-failing | error
    Column("replayed_status", String(16), nullable=False, default=""),
    Column("metrics", JSON, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("added_by", Text, nullable=False, default=""),
)

# Status changes and other events of a case, for its page's history.
history = Table(
    "history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(ID), nullable=False, index=True),
    Column("at", String(32), nullable=False),
    Column("event", String(16), nullable=False),  # added | observed | status | replay | linked
    Column("detail", JSON, nullable=False),
    Column("added_by", Text, nullable=False, default=""),
)

# Evidence files by content: the same bytes are kept once whatever cites them.
artifacts = Table(
    "artifacts", metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("media_type", String(64), nullable=False, default="application/octet-stream"),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", String(32), nullable=False),
)
