"""Calls per second and post-dial delay through Kamailio, with and without the portal's say.

SIPp places short calls (-r rate, -l concurrent limit, -d hold) through Kamailio running
contrib/kamailio/kamailio.cfg to a SIPp that answers. The same load runs with SKIP_PORTAL
(Kamailio relays at once: the baseline) and with the portal (gunicorn as `make run` serves it)
authorizing each INVITE and billing its BYE. The post-dial delay is SIPp's response time from
the INVITE to the callee's first answer (180 Ringing), in whole milliseconds.
"""

import argparse
import csv
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from bench.common import (  # noqa: E402
    ADMIN_PASSWORD,
    FAST_HASH,
    ROOT,
    gunicorn,
    make_app,
    migrate,
    postgres_database,
    sqlite_database,
)
from portal.accounts.service import create_admin  # noqa: E402
from portal.apikeys.service import create_key  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import (  # noqa: E402
    Account,
    Call,
    CallStatus,
    Rate,
    RateGroup,
    Role,
    SipDevice,
    Status,
)

CONFIG = ROOT / "contrib" / "kamailio" / "kamailio.cfg"
SCENARIOS = ROOT / "contrib" / "kamailio" / "sipp"
DESTINATION = "442079460958"
SIP_USERS = 200  # callers, each an account of its own: one account's calls wait on its row
FUNDS = Decimal("1000000000")  # enough for every reservation of the run
KAMAILIO = shutil.which("kamailio", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
SIPP = shutil.which("sipp")


def seed(database_url: str) -> str:
    """Migrate, then add an admin's API key and funded customers with a SIP device: the key."""
    app = make_app(database_url, FAST_HASH)
    migrate(app)
    with app.app_context():
        admin = create_admin("admin@bench.example", ADMIN_PASSWORD)
        group = RateGroup(name="Bench", status=Status.ACTIVE)
        db.session.add(group)
        db.session.flush()
        db.session.add(
            Rate(
                rate_group_id=group.id,
                prefix="44",
                destination="UK",
                connect_cost=Decimal(0),
                cost_per_minute=Decimal("0.02"),
                initial_increment=1,
                increment=1,
            )
        )
        for index in range(SIP_USERS):
            account = Account(
                account_number=str(6_000_000_000 + index),
                role=Role.CUSTOMER,
                password_hash="x",
                rate_group_id=group.id,
                balance=FUNDS,
            )
            db.session.add(account)
            db.session.flush()
            username = f"bench-caller-{index}"
            db.session.add(SipDevice(account_id=account.id, username=username, password="x"))
        db.session.commit()
        _row, key = create_key(admin, "kamailio", "")
        db.session.remove()
        db.engine.dispose()
    return key


def udp_port() -> int:
    """A loopback UDP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def kamailio(directory: Path, port: int, gateway: int, children: int, defines: dict):
    """Kamailio with contrib/kamailio/kamailio.cfg on 127.0.0.1:`port` (a Popen)."""
    runtime = directory / f"run-{port}"
    runtime.mkdir()
    command = [KAMAILIO, "-f", str(CONFIG), "-DD", "-E", "-Y", str(runtime), "-m", "128"]
    command += ["-M", "8", "-l", f"udp:127.0.0.1:{port}", "-A", f"SIP_CHILDREN={children}"]
    command += ["-A", f'GATEWAY="127.0.0.1:{gateway}"']
    for name, value in defines.items():
        command += ["-A", f"{name}={value}" if value else name]
    log = open(directory / f"kamailio-{port}.log", "w")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    time.sleep(1.5)  # its children start; a dead one shows in the log
    if process.poll() is not None:
        raise RuntimeError((directory / f"kamailio-{port}.log").read_text())
    return process


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def caller_scenario(directory: Path) -> tuple[Path, Path]:
    """contrib's caller.xml with the caller taken in turn from a file of SIP_USERS users."""
    scenario = directory / "caller.xml"
    text = (SCENARIOS / "caller.xml").read_text().replace("[caller]", "[field0]")
    scenario.write_text(text)
    users = directory / "users.csv"
    users.write_text("SEQUENTIAL\n" + "".join(f"bench-caller-{i};\n" for i in range(SIP_USERS)))
    return scenario, users


def sip_load(directory: Path, proxy: int, args) -> dict:
    """One SIPp run of args.calls calls through the proxy: rates, failures and delays."""
    scenario, users = caller_scenario(directory)
    command = [SIPP, f"127.0.0.1:{proxy}", "-sf", str(scenario), "-inf", str(users)]
    command += ["-i", "127.0.0.1", "-p", str(udp_port()), "-s", DESTINATION]
    command += ["-d", str(args.hold_ms), "-m", str(args.calls)]
    command += ["-r", str(args.rate), "-l", str(args.limit), "-nostdin", "-timeout", "300"]
    command += ["-trace_rtt", "-rtt_freq", "1", "-trace_stat", "-stf", "stat.csv"]
    started = time.monotonic()
    subprocess.run(  # noqa: S603 (our own command)
        command, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    elapsed = time.monotonic() - started
    with open(directory / "stat.csv") as stats:
        last = list(csv.DictReader(stats, delimiter=";"))[-1]
    delays = []
    for path in directory.glob("caller_*_rtt.csv"):
        with open(path) as rtt:
            delays += [float(row["response_time_ms"]) for row in csv.DictReader(rtt, delimiter=";")]
        path.unlink()
    (directory / "stat.csv").unlink()
    succeeded = int(last["SuccessfulCall(C)"])
    return {
        "calls": succeeded,
        "failed": int(last["FailedCall(C)"]),
        "seconds": elapsed,
        "calls_per_s": succeeded / elapsed,
        "pdd_ms": percentiles(delays),
    }


def percentiles(values: list[float]) -> dict:
    """p50, p90, p99 and the maximum of `values` (ms)."""
    if len(values) < 2:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "max": max(values)}


def ended_calls(database_url: str) -> tuple[int, int]:
    """(ended, still live) calls in the portal's database."""
    app = make_app(database_url, FAST_HASH)
    with app.app_context():
        counts = dict(
            db.session.execute(select(Call.status, func.count()).group_by(Call.status)).all()
        )
        db.engine.dispose()
    return counts.get(CallStatus.ENDED, 0), counts.get(CallStatus.LIVE, 0)


def measure(backend: str, database_url: str, args) -> dict:
    """Baseline (SKIP_PORTAL) and portal runs of the same SIP load, alternated `rounds` times."""
    key = seed(database_url)
    env = {"DATABASE_URL": database_url, "SECRET_KEY": "bench-secret"}
    result = {"backend": backend, "baseline": [], "portal": []}
    with (
        gunicorn("app:app", env, args.workers) as (web_port, _master),
        tempfile.TemporaryDirectory(prefix="portal-bench-sip-") as folder,
    ):
        directory = Path(args.logs or folder)
        directory.mkdir(parents=True, exist_ok=True)
        gateway = udp_port()
        callee = subprocess.Popen(  # noqa: S603 (our own command)
            [SIPP, "-sf", str(SCENARIOS / "callee.xml"), "-i", "127.0.0.1", "-p", str(gateway)]
            + ["-nostdin"],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        proxies = {
            "baseline": {"SKIP_PORTAL": ""},
            "portal": {
                "PORTAL_URL": f'"http://127.0.0.1:{web_port}"',
                "PORTAL_API_KEY": f'"{key}"',
            },
        }
        try:
            for _round in range(args.rounds):
                for name, defines in proxies.items():
                    port = udp_port()
                    proxy = kamailio(directory, port, gateway, args.children, defines)
                    try:
                        result[name].append(sip_load(directory, port, args))
                    finally:
                        stop(proxy)
        finally:
            stop(callee)
    result["ended"], result["live"] = ended_calls(database_url)
    return result


def report(result: dict, args) -> None:
    """A table: calls per second and post-dial delay percentiles, baseline against portal."""
    print(
        f"\n{result['backend']}: {args.calls} calls a run, -r {args.rate} -l {args.limit} "
        f"-d {args.hold_ms} ms, {args.children} Kamailio children, {args.workers} gunicorn "
        f"workers, {args.rounds} rounds (median run by calls/s)"
    )
    print(
        f"{'':10} {'calls/s':>8} {'failed':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max':>6}"
    )
    medians = {}
    for name in ("baseline", "portal"):
        runs = sorted(result[name], key=lambda run: run["calls_per_s"])
        run = runs[len(runs) // 2]
        medians[name] = run
        pdd = run["pdd_ms"]
        print(
            f"{name:10} {run['calls_per_s']:8.1f} {run['failed']:7d} {pdd['p50']:7.0f} "
            f"{pdd['p90']:7.0f} {pdd['p99']:7.0f} {pdd['max']:6.0f}"
        )
    added = medians["portal"]["pdd_ms"]["p99"] - medians["baseline"]["pdd_ms"]["p99"]
    print(f"post-dial delay added by the portal at p99: {added:.0f} ms")
    print(f"portal calls ended (billed): {result['ended']}, left live: {result['live']}")


def main(argv: list[str] | None = None) -> list[dict]:
    """Run on SQLite (and PostgreSQL with --postgres); print and return the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000, help="calls in one SIPp run")
    parser.add_argument("--rate", type=int, default=200, help="new calls a second (sipp -r)")
    parser.add_argument("--limit", type=int, default=50, help="concurrent calls (sipp -l)")
    parser.add_argument("--hold-ms", type=int, default=100, help="answered time (sipp -d)")
    parser.add_argument("--rounds", type=int, default=3, help="baseline and portal runs each")
    parser.add_argument("--children", type=int, default=8, help="Kamailio UDP children")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--logs", type=Path, help="keep Kamailio's logs in this (new) folder")
    args = parser.parse_args(argv)
    if KAMAILIO is None or SIPP is None:
        sys.exit(
            "needs kamailio and sipp: apt-get install kamailio kamailio-utils-modules "
            "kamailio-json-modules sip-tester"
        )
    results = []
    with sqlite_database() as url:
        results.append(measure("SQLite", url, args))
        report(results[-1], args)
    if args.postgres:
        with postgres_database() as url:
            results.append(measure("PostgreSQL", url, args))
            report(results[-1], args)
    return results


if __name__ == "__main__":
    main()
