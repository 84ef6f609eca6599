"""Runs the example patient app (examples/patient_app/app.py) against a live gateway.

Starts the debug binary's dev profile on a free loopback port with a throwaway data directory
(as fhir_validate.py does), runs `app.py <base>` (sign-in through the dev identity provider with
PKCE as Jane Smith, NHS number 9990000018, then `$my-access` and her records), prints what it
printed, and exits with its status. An app that exits 0 without having read Jane's record
(Patient/patient-jane-smith) fails too. Stops the gateway on the way out; bounded in time.

    python3 .ci/example_client.py      # GP_GATEWAY_BINARY=path to run another build
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BINARY = os.environ.get("GP_GATEWAY_BINARY", os.path.join(HERE, "..", "target", "debug", "gp-online-gateway"))
APP = os.path.join(HERE, "..", "examples", "patient_app", "app.py")
APP_TIMEOUT = 120  # seconds
EXPECTED = "read Patient/patient-jane-smith:"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_live(base, server, deadline):
    while time.time() < deadline:
        if server.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{base}/health/live", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def main():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        env = dict(os.environ, GATEWAY_BIND=f"127.0.0.1:{port}", GATEWAY_DATA_DIR=data,
                   DATABASE_URL=f"sqlite://{data}/gateway.db",
                   GATEWAY_SUPPLIERS__SIMULATOR_EMIS_BIND="127.0.0.1:0",
                   GATEWAY_SUPPLIERS__SIMULATOR_TPP_BIND="127.0.0.1:0")
        env.pop("GATEWAY_PUBLIC_URL", None)
        env.pop("GATEWAY_CONFIG", None)
        log_path = os.path.join(data, "gateway.log")
        with open(log_path, "wb") as log:
            server = subprocess.Popen([BINARY, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        try:
            if not wait_live(base, server, time.time() + 60):
                with open(log_path, errors="replace") as log:
                    print(f"the gateway did not come up on {base} (exit {server.poll()}):\n{log.read()[-3000:]}")
                return 1
            print(f"$ app.py {base}")
            sys.stdout.flush()
            try:
                app = subprocess.run([sys.executable, APP, base], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, timeout=APP_TIMEOUT)
            except subprocess.TimeoutExpired as expired:
                print(expired.stdout or "")
                print(f"app.py did not finish within {APP_TIMEOUT} s")
                return 1
            print(app.stdout, end="")
            if app.returncode != 0:
                print(f"app.py exited {app.returncode}")
                return app.returncode
            if EXPECTED not in app.stdout:
                print(f"app.py exited 0 without reading Jane Smith's record (no line with {EXPECTED!r})")
                return 1
            print("app.py exited 0")
            return 0
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=15)


if __name__ == "__main__":
    sys.exit(main())
