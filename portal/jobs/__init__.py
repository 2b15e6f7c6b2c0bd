"""The Jobs page (progress and results of background work) and the tasks the consumer runs."""

from flask import Blueprint

bp = Blueprint("jobs", __name__, url_prefix="/jobs")

from portal.jobs import views  # noqa: E402, F401
