"""Idempotency-Key: a retried create or money post gets the first answer and creates nothing."""

import hashlib
import json
from datetime import timedelta

from flask import Response, g, request
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from portal.api.errors import ApiError
from portal.extensions import db
from portal.models import IdempotencyRecord, utcnow
from portal.transactions import ValidationFailed, operation, transaction

KEEP_FOR = timedelta(hours=24)
HEADER = "Idempotency-Key"


def _key() -> str | None:
    """The request's Idempotency-Key, checked, or None."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > 255 or not key.isprintable():
        raise ApiError(422, "Invalid Idempotency-Key.", {HEADER: "1 to 255 printable characters."})
    return key


def _fingerprint() -> str:
    """What makes a retry the same request: method, path and body."""
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def _stored(key: str) -> IdempotencyRecord | None:
    """This caller's record for `key`, if one is still kept."""
    record = db.session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.owner_id == g.api_owner.id, IdempotencyRecord.key == key
        )
    )
    if record is not None and record.created_at < utcnow() - KEEP_FOR:
        db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record.id))
        db.session.commit()
        return None
    return record


def _replay(record: IdempotencyRecord) -> Response:
    """The stored answer, marked as a replay; a different request under the key is refused."""
    if record.fingerprint != _fingerprint():
        raise ApiError(
            422,
            "This Idempotency-Key was already used for a different request.",
            {HEADER: "Use a new key for a new request."},
        )
    response = Response(record.response_body, record.status_code, mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response


def run_once(work, answer, status: int = 201) -> tuple[Response, object]:
    """Run `work()` once per Idempotency-Key: (answer, its result, or None for a replay)."""
    # answer(result, stored) makes the JSON body; the stored copy leaves out one-time secrets.
    key = _key()
    if key is not None and (record := _stored(key)) is not None:
        return _replay(record), None
    try:
        with operation():
            result = work()
            if key is not None:
                db.session.add(
                    IdempotencyRecord(
                        owner_id=g.api_owner.id,
                        key=key,
                        fingerprint=_fingerprint(),
                        status_code=status,
                        response_body=json.dumps(answer(result, stored=True)),
                    )
                )
                db.session.flush()
    except (IntegrityError, ValidationFailed):
        # A concurrent request with the same key won the race: everything here was rolled back,
        # and its answer is the answer (a field error may just be that request's own row).
        if key is not None and (record := _stored(key)) is not None:
            return _replay(record), None
        raise
    body = json.dumps(answer(result, stored=False))
    return Response(body, status, mimetype="application/json"), result


def purge(now=None) -> int:
    """Delete the records past their keeping time; how many."""
    cutoff = (now or utcnow()) - KEEP_FOR
    with transaction():
        result = db.session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)
        )
    return result.rowcount
