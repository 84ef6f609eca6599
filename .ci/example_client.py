"""Runs the example patient app (examples/patient_app/app.py) against a live gateway.

Starts the debug binary's dev profile on a free loopback port with a throwaway data directory
(as fhir_validate.py does), runs `app.py <base>` (sign-in through the dev identity provider with
PKCE as Jane Smith, NHS number 9990000018, then `$my-access` and her records), prints what it
printed, and exits with its status. An app that exits 0 without having read Jane's record
(Patient/patient-jane-smith) fails too. Stops the gateway on the way out; bounded in time.

    python3 .ci/example_client.py      # GP_GATEWAY_BINARY=path to run another build
"""
import os
import subprocess
import sys

from devgateway import DevGateway, GatewayDidNotStart

HERE = os.path.dirname(os.path.abspath(__file__))
APP = os.path.join(HERE, "..", "examples", "patient_app", "app.py")
APP_TIMEOUT = 120  # seconds
EXPECTED = "read Patient/patient-jane-smith:"


def run_app(base):
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


def main():
    try:
        with DevGateway() as gateway:
            return run_app(gateway.base)
    except GatewayDidNotStart as error:
        print(error)
        return 1

if __name__ == "__main__":
    sys.exit(main())
