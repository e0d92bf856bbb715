"""The results store's tables (SQLAlchemy Core), at the newest schema version.

One row per round, submitter, system, result and run. A *result* is what MLPerf publishes
as one number: a training benchmark's olympic mean of N runs, or an inference benchmark in
one scenario. Runs keep their whole quality-versus-time curve (JSON) so the report can draw
convergence without going back to the logs. Natural keys are unique constraints: they are
what makes an import idempotent and two concurrent imports safe (a duplicate insert fails
instead of doubling a row).

A result carries what makes its number comparable with another: scale (mini or reference),
quality metric and target, division (and, through its system, the round). A system keeps
every result set it ever made: the key of a result is its system, benchmark (and scenario)
*and the hash of its files*, so training again adds a result beside the earlier one, while
importing the same files again adds nothing.

Changing a table here means adding a step to `migrations.MIGRATIONS` as well.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, Float, ForeignKey, Integer, MetaData, String, Table,
                        Text, UniqueConstraint)

from mlpace.rules.divisions import AVAILABILITY_CATEGORY

metadata = MetaData()

# systems.availability holds the category MLCommons groups its tables by; a description's
# `status` maps to it like this.
AVAILABILITY = AVAILABILITY_CATEGORY

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True),
    Column("description", Text, nullable=False),
    Column("applied_at", String(32), nullable=False),
)

rounds = Table(
    "rounds", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),   # "training v1.0"
    Column("kind", String(16), nullable=False),                 # training | inference
    Column("version", String(16), nullable=False),              # "1.0", or "local"
)

submitters = Table(
    "submitters", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
)

systems = Table(
    "systems", metadata,
    Column("id", Integer, primary_key=True),
    Column("round_id", ForeignKey("rounds.id"), nullable=False),
    Column("submitter_id", ForeignKey("submitters.id"), nullable=False),
    Column("name", String(256), nullable=False),    # the folder name: the key in the tree
    Column("title", Text, nullable=False),          # system_name of the description
    Column("division", String(16), nullable=False),
    Column("availability", String(32), nullable=False),
    # The columns the round tables show, taken from the description for querying.
    Column("nodes", Integer),
    Column("processor", Text),
    Column("processor_count", Integer),
    Column("accelerator", Text),
    Column("accelerator_count", Integer),
    Column("framework", Text),
    Column("description", Text, nullable=False),    # every field, as JSON
    UniqueConstraint("round_id", "submitter_id", "name", name="uq_system"),
)

training_results = Table(
    "training_results", metadata,
    Column("id", Integer, primary_key=True),
    Column("system_id", ForeignKey("systems.id", ondelete="CASCADE"), nullable=False),
    Column("benchmark", String(32), nullable=False),
    Column("minutes", Float),                      # olympic mean; NULL when there is no score
    Column("runs_counted", Integer, nullable=False),
    Column("runs_failed", Integer, nullable=False),
    Column("notes", Text, nullable=False),         # how it was scored, or why there is no score
    Column("target", Text),                        # JSON quality target; NULL when unknown
    Column("content_hash", String(64), nullable=False),
    Column("source", Text, nullable=False),        # folder the logs came from
    Column("scale", String(16), nullable=False),   # mini | reference
    Column("metric", String(64), nullable=False),  # quality metric, e.g. "top-1 accuracy"
    Column("division", String(16), nullable=False),  # as submitted (a system may change)
    Column("run_date", String(32)),                # first run_start, ISO UTC
    Column("config", Text),                        # JSON: mlpace's resolved config, if any
    UniqueConstraint("system_id", "benchmark", "content_hash", name="uq_training_result_files"),
)

training_runs = Table(
    "training_runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("result_id", ForeignKey("training_results.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("file", String(256), nullable=False),
    Column("seed", BigInteger),                    # some submitters log 64-bit seeds
    Column("status", String(16)),
    Column("minutes", Float),                      # NULL when the run did not converge
    Column("global_batch_size", BigInteger),
    Column("run_start_ms", Float),
    Column("run_stop_ms", Float),
    Column("curve", Text, nullable=False),         # JSON [[epoch, minutes, quality], ...]
)

inference_results = Table(
    "inference_results", metadata,
    Column("id", Integer, primary_key=True),
    Column("system_id", ForeignKey("systems.id", ondelete="CASCADE"), nullable=False),
    Column("benchmark", String(64), nullable=False),
    Column("scenario", String(16), nullable=False),  # SingleStream | MultiStream | Server | Offline
    Column("metric", String(64), nullable=False),    # e.g. "samples/s", "p90 latency (ms)"
    Column("value", Float),
    Column("valid", Boolean),
    Column("accuracy", Text),                        # the accuracy line, e.g. "mAP=22.914%"
    Column("notes", Text, nullable=False),           # e.g. the folder and LoadGen disagree
    Column("details", Text, nullable=False),         # JSON: every parsed summary field, per run
    Column("content_hash", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("scale", String(16), nullable=False),     # mini | reference | unknown
    Column("division", String(16), nullable=False),
    UniqueConstraint("system_id", "benchmark", "scenario", "content_hash",
                     name="uq_inference_result_files"),
)

# What imports have hashed: a stamp of a result folder's files (names, sizes, modification
# and change times, inodes: `importers.folder_stamp`) and the content hash those files had,
# so importing files that did not change reads none of them.
file_stamps = Table(
    "file_stamps", metadata,
    Column("stamp", String(64), primary_key=True),
    Column("content_hash", String(64), nullable=False),
)
