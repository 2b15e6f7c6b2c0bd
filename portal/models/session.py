"""Login sessions (one row per login) and the shared failed-login counters."""

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.account import utcnow


class LoginSession(db.Model):
    """One login of one browser: its cookie holds "id:token", the row only the token's hash."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # sha256 of the random token: a copy of this table opens no session.
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    remember: Mapped[bool] = mapped_column(default=False)


class LoginFailureCounter(db.Model):
    """Failed attempts under one key (hashed scope, value and limit) in a fixed window."""

    __tablename__ = "login_failure_counters"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The window starts at its first failure and lasts the limit's period (like limits' fixed
    # window): a later failure after it ends starts a new one.
    window_start: Mapped[datetime]
    window_end: Mapped[datetime] = mapped_column(index=True)
    count: Mapped[int] = mapped_column(default=0)
