"""The portal with authorizations served by the blueprint's route in Flask, not by the lane."""

from portal import create_app
from portal.api.authorize import AuthorizeLane

app = create_app()
# bench_authorize.py --through-flask: what the lane saves, measured (no proxy in front, so
# the lane is the outermost wrapper).
assert isinstance(app.wsgi_app, AuthorizeLane)
app.wsgi_app = app.wsgi_app.wsgi_app
