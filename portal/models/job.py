"""Background jobs a person (or the scheduler) started, with their progress and result files."""

import enum
import json
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from portal.extensions import db
from portal.models.account import _enum, utcnow


class JobStatus(enum.StrEnum):
    """Where a job is; done and failed are final."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Job(db.Model):
    """One piece of long work: who started it, for which tenant, how far it got, what it made."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    label: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), default=JobStatus.QUEUED)
    # Who started it (NULL: the scheduler) and whose tenant it belongs to (NULL: the operator).
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    # What the job was asked to do, as JSON (never a secret: those go in job_files).
    params: Mapped[str] = mapped_column(Text, default="{}")
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    result: Mapped[str] = mapped_column(Text, default="{}")
    error: Mapped[str] = mapped_column(String(500), default="")
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Written every few seconds by the worker running it: a job whose heartbeat stops is dead.
    heartbeat_at: Mapped[datetime | None]

    started_by = relationship("Account", foreign_keys=[started_by_id])

    __table_args__ = (
        Index("ix_jobs_owner_id_id", "owner_id", "id"),
        Index("ix_jobs_status_heartbeat_at", "status", "heartbeat_at"),
    )

    @property
    def is_final(self) -> bool:
        """Whether the job has ended (done or failed)."""
        return self.status in (JobStatus.DONE, JobStatus.FAILED)

    @property
    def outcome(self) -> dict:
        """The result as a mapping (counts, per-line errors, file names)."""
        return json.loads(self.result or "{}")

    @property
    def arguments(self) -> dict:
        """The parameters as a mapping."""
        return json.loads(self.params or "{}")

    @property
    def percent(self) -> int:
        """How far the job got, 0 to 100."""
        if self.status == JobStatus.DONE:
            return 100
        return min(100, self.done * 100 // self.total) if self.total else 0


class JobFile(db.Model):
    """A file a job reads (its upload) or makes (an export, the credentials shown once)."""

    __tablename__ = "job_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(30))
    filename: Mapped[str] = mapped_column(String(100), default="")
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("job_id", "name"),
        Index("ix_job_files_expires_at", "expires_at"),
    )
