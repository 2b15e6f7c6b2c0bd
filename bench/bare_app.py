"""The baseline of bench_authorize.py: a bare Flask app whose one endpoint returns a constant."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.post("/bare")
def bare():
    """The same kind of JSON POST as an authorization, answered without any work."""
    return jsonify({"allowed": True, "cause": "OK"})
