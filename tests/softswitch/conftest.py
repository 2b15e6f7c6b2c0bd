"""Kamailio and SIPp on loopback in front of the portal served as `make run` serves it.

Without kamailio or sipp the tests are skipped, or fail when PORTAL_REQUIRE_SOFTSWITCH=1 (CI).
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.served.conftest import _gunicorn, served  # noqa: F401 (the served portal's fixtures)

CONFIG = ROOT / "contrib" / "kamailio" / "kamailio.cfg"
SCENARIOS = ROOT / "contrib" / "kamailio" / "sipp"
START_TIMEOUT_S = 20
OPTIONS = (
    "OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{own};branch=z9hG4bK-probe-{stamp}\r\n"
    "From: <sip:probe@127.0.0.1>;tag=probe\r\n"
    "To: <sip:ping@127.0.0.1>\r\n"
    "Call-ID: probe-{stamp}@127.0.0.1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n"
)


def udp_port() -> int:
    """A loopback UDP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def softswitch_tools() -> dict[str, str]:
    """The kamailio and sipp executables; skip without them, or fail when required."""
    path = f"{os.environ.get('PATH', '')}:/usr/sbin"  # kamailio is in sbin
    tools = {name: shutil.which(name, path=path) for name in ("kamailio", "sipp")}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        reason = (
            f"{' and '.join(missing)} not found; install with apt-get install kamailio "
            "kamailio-utils-modules kamailio-json-modules sip-tester"
        )
        if os.environ.get("PORTAL_REQUIRE_SOFTSWITCH") == "1":
            pytest.fail(f"PORTAL_REQUIRE_SOFTSWITCH=1 but {reason}", pytrace=False)
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return tools


class Kamailio:
    """contrib/kamailio/kamailio.cfg in the foreground on a loopback UDP port."""

    def __init__(self, executable: str, directory: Path, defines: dict[str, str]):
        self.port = udp_port()
        self.log = directory / "kamailio.log"
        runtime = directory / "run"
        runtime.mkdir()
        command = [executable, "-f", str(CONFIG), "-DD", "-E", "-Y", str(runtime)]
        command += ["-l", f"udp:127.0.0.1:{self.port}", "-m", "64", "-M", "8"]
        for name, value in defines.items():
            command += ["-A", f"{name}={value}" if value else name]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise

    def _wait_until_answering(self) -> None:
        """Send OPTIONS until any SIP answer comes back; fail with the log if it exits."""
        deadline = time.monotonic() + START_TIMEOUT_S
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            probe.settimeout(0.3)
            own = probe.getsockname()[1]
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"kamailio exited:\n{self.log.read_text()}", pytrace=False)
                message = OPTIONS.format(port=self.port, own=own, stamp=time.monotonic_ns())
                probe.sendto(message.encode(), ("127.0.0.1", self.port))
                try:
                    if probe.recv(4096).startswith(b"SIP/2.0 "):
                        return
                except TimeoutError:
                    continue
        pytest.fail(f"kamailio did not answer within {START_TIMEOUT_S} s", pytrace=False)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Sipp:
    """SIPp runs with the scenarios of contrib/kamailio/sipp, in one directory for its files."""

    def __init__(self, executable: str, directory: Path):
        self.executable = executable
        self.directory = directory
        self.runs = 0

    def command(self, scenario: str, port: int, *args: str, proxy: int | None = None) -> list:
        """sipp with `scenario` on 127.0.0.1:`port`, its messages and errors in files."""
        self.runs += 1
        name = f"{Path(scenario).stem}-{self.runs}"
        command = [self.executable]
        if proxy is not None:
            command.append(f"127.0.0.1:{proxy}")
        command += ["-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port)]
        command += ["-nostdin", "-trace_msg", "-message_file", f"{name}.msg"]
        command += ["-trace_err", "-error_file", f"{name}.err", *args]
        return command

    def start(self, scenario: str, port: int, *args: str) -> subprocess.Popen:
        """A SIPp in the background (the callee)."""
        with open(self.directory / f"sipp-{self.runs + 1}.out", "w") as out:
            return subprocess.Popen(  # noqa: S603 (our own command)
                self.command(scenario, port, *args), cwd=self.directory, stdout=out, stderr=out
            )

    def run(self, scenario: str, proxy: int, *args: str, timeout: float = 60) -> "SippRun":
        """A SIPp run to its end (the caller): its exit code and the messages it traced."""
        command = self.command(scenario, udp_port(), *args, proxy=proxy)
        name = f"{Path(scenario).stem}-{self.runs}"
        completed = subprocess.run(  # noqa: S603 (our own command)
            command, cwd=self.directory, capture_output=True, text=True, timeout=timeout
        )
        return SippRun(
            completed.returncode,
            _read(self.directory / f"{name}.msg"),
            _read(self.directory / f"{name}.err"),
        )


class SippRun:
    """What one SIPp run did."""

    def __init__(self, returncode: int, messages: str, errors: str):
        self.returncode = returncode
        self.messages = messages
        self.errors = errors

    def received_codes(self) -> list[int]:
        """The status codes of the SIP answers received, in order."""
        codes = []
        for block in self.messages.split("message received")[1:]:
            first = block.partition(":\n\n")[2].partition("\n")[0]
            if first.startswith("SIP/2.0 "):
                codes.append(int(first.split()[1]))
        return codes


def _read(path: Path) -> str:
    """The file's text, or "" when SIPp wrote none."""
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def sipp(softswitch_tools, tmp_path) -> Sipp:
    """SIPp in a directory of the test's own."""
    return Sipp(softswitch_tools["sipp"], tmp_path)


@pytest.fixture
def start_kamailio(softswitch_tools, tmp_path):
    """Start Kamailio with the given defines (stopped after the test); it gets a callee port."""
    started = []

    def start(**defines: str) -> Kamailio:
        gateway = udp_port()
        directory = tmp_path / f"kamailio-{len(started)}"
        directory.mkdir()
        defines = {"GATEWAY": f'"127.0.0.1:{gateway}"', **defines}
        server = Kamailio(softswitch_tools["kamailio"], directory, defines)
        server.gateway = gateway
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def kamailio(start_kamailio, served, api_key):  # noqa: F811 (served is imported)
    """Kamailio in front of the served portal with the admin's API key."""
    return start_kamailio(PORTAL_URL=f'"{served.server.url}"', PORTAL_API_KEY=f'"{api_key}"')
