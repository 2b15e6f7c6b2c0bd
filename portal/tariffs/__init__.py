"""Tariff -> Rate Groups."""

from flask import Blueprint

bp = Blueprint("tariffs", __name__, url_prefix="/tariff/rate-groups")

from portal.tariffs import views  # noqa: F401
