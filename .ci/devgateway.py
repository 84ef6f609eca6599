"""Runs the gateway's dev profile for the CI scripts: the debug binary (or GP_GATEWAY_BINARY) on
a free loopback port, with a throwaway data directory and SQLite file, simulators on free ports,
stopped on the way out.

    with DevGateway() as gw:
        gw.base            # http://127.0.0.1:PORT
        gw.token("staff-emis")
"""
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BINARY = os.environ.get("GP_GATEWAY_BINARY", os.path.join(HERE, "..", "target", "debug", "gp-online-gateway"))


class GatewayDidNotStart(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevGateway:
    def __init__(self, start_timeout=60, env=None):
        self.start_timeout = start_timeout
        self.extra_env = env or {}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self._data = tempfile.TemporaryDirectory()
        data = self._data.name
        self.env = dict(os.environ, GATEWAY_BIND=f"127.0.0.1:{self.port}", GATEWAY_DATA_DIR=data,
                        DATABASE_URL=f"sqlite://{data}/gateway.db",
                        GATEWAY_SUPPLIERS__SIMULATOR_EMIS_BIND="127.0.0.1:0",
                        GATEWAY_SUPPLIERS__SIMULATOR_TPP_BIND="127.0.0.1:0")
        self.env.update(self.extra_env)
        self.env.pop("GATEWAY_PUBLIC_URL", None)
        self.env.pop("GATEWAY_CONFIG", None)
        self.log_path = os.path.join(data, "gateway.log")
        with open(self.log_path, "wb") as log:
            self.server = subprocess.Popen([BINARY, "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL)
        if not self._wait_live(time.time() + self.start_timeout):
            with open(self.log_path, errors="replace") as log:
                tail = log.read()[-3000:]
            code = self.server.poll()
            self.__exit__(None, None, None)
            raise GatewayDidNotStart(f"the gateway did not come up on {self.base} (exit {code}):\n{tail}")
        return self

    def __exit__(self, *exc):
        self.server.terminate()
        try:
            self.server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait(timeout=15)
        self._data.cleanup()
        return False

    def _wait_live(self, deadline):
        while time.time() < deadline:
            if self.server.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.base}/health/live", timeout=2) as response:
                    if response.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def token(self, persona):
        """A dev token for a persona, signed with this gateway's dev key."""
        return subprocess.check_output([BINARY, "dev-token", "--persona", persona], env=self.env, text=True,
                                       timeout=30, stdin=subprocess.DEVNULL).strip()

    def person(self, nhs_number):
        """An NHS login-like P9 token for any NHS number."""
        return subprocess.check_output([BINARY, "dev-token", "--nhs-number", nhs_number], env=self.env, text=True,
                                       timeout=30, stdin=subprocess.DEVNULL).strip()
