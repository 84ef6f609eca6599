"""Runs the README's walkthrough (the shell blocks of its "Trying it" section) against the dev
profile, so that every command in it keeps running as pasted.

Starts the debug binary's dev profile on free loopback ports (see devgateway.py) and runs the
blocks, in order, as one bash script with these changes only: `cargo run --release -q --` is
the binary, `http://127.0.0.1:8080` and the simulators' `8091` and `8092` are the ports this
run uses, and the `<accountId>` and `<linkageKey>` a reader copies from the letter are read
from it. Every curl must answer 2xx, or the status its line's comment names (`# 403 ...`); a
409 is tried again for a few seconds, as a reader waits for the provisioning Task before
printing the letter. Stops the gateway on the way out; bounded in time.

    python3 .ci/readme_walkthrough.py      # GP_GATEWAY_BINARY=path to run another build
"""
import os
import re
import subprocess
import sys
import tempfile

from devgateway import BINARY, DevGateway, GatewayDidNotStart, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
README = os.path.join(ROOT, "README.md")
SCRIPT_TIMEOUT = 300  # seconds

PRELUDE = r'''
set -euo pipefail
n=0
curl() {
  n=$((n + 1))
  local body="$WALK/body-$n" status tries=0
  while :; do
    status=$(command curl -sS -o "$body" -w '%{http_code}' "$@")
    if [ "$status" = 409 ] && [ -z "${EXPECT:-}" ] && [ $tries -lt 40 ]; then
      tries=$((tries + 1)); sleep 0.25; continue
    fi
    break
  done
  cat "$body"; echo
  case "$*" in *registration-letter*) cp "$body" "$WALK/letter.json" ;; esac
  if [ -n "${EXPECT:-}" ]; then
    [ "$status" = "$EXPECT" ] || { echo "WALKTHROUGH: expected $EXPECT, got $status: curl $*" >&2; exit 1; }
  else
    case "$status" in 2??) ;; *) echo "WALKTHROUGH: got $status: curl $*" >&2; exit 1 ;; esac
  fi
  echo "WALKTHROUGH: $status" >&2
}
letter_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WALK/letter.json" "$1"; }
sleep() { command sleep "$(( $1 > 2 ? 2 : $1 ))"; }
'''


def walkthrough_blocks(text):
    start = text.index("\n## Trying it\n")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", text[start:end], re.S)


def adapt(script, base, emis, tpp):
    script = script.replace("cargo run --release -q --", BINARY)
    script = script.replace("http://127.0.0.1:8080", base)
    script = script.replace("127.0.0.1:8091", f"127.0.0.1:{emis}").replace("127.0.0.1:8092", f"127.0.0.1:{tpp}")
    script = script.replace("<accountId>", "'\"$(letter_field accountId)\"'")
    script = script.replace("<linkageKey>", "'\"$(letter_field linkageKey)\"'")
    script = re.sub(r"examples/patient_app/app\.py(?! http)", f"examples/patient_app/app.py {base}", script)
    lines = []
    for line in script.splitlines():
        expected = re.search(r"^\s*curl .*#\s*(\d{3})\b", line)
        lines.append(f"EXPECT={expected.group(1)} {line.lstrip()}" if expected else line)
    return "\n".join(lines) + "\n"


def main():
    with open(README) as f:
        blocks = walkthrough_blocks(f.read())
    if not blocks:
        print("no shell blocks found under 'Trying it' in README.md")
        return 1
    emis, tpp = free_port(), free_port()
    env = {"GATEWAY_SUPPLIERS__SIMULATOR_EMIS_BIND": f"127.0.0.1:{emis}",
           "GATEWAY_SUPPLIERS__SIMULATOR_TPP_BIND": f"127.0.0.1:{tpp}"}
    try:
        with DevGateway(env=env) as gateway, tempfile.TemporaryDirectory() as walk:
            script = PRELUDE + "".join(adapt(b, gateway.base, emis, tpp) for b in blocks)
            run_env = dict(gateway.env, WALK=walk)
            try:
                done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=run_env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      timeout=SCRIPT_TIMEOUT)
            except subprocess.TimeoutExpired as expired:
                print(expired.stdout or "")
                print(f"the walkthrough did not finish within {SCRIPT_TIMEOUT} s")
                return 1
            statuses = [l for l in done.stdout.splitlines() if l.startswith("WALKTHROUGH:")]
            if done.returncode != 0:
                print(done.stdout[-6000:])
                print(f"the walkthrough stopped (exit {done.returncode}) after {len(statuses)} answers")
                return 1
            print("\n".join(statuses))
            print(f"the README walkthrough ran: {len(blocks)} blocks, {len(statuses)} HTTP calls as expected")
            return 0
    except GatewayDidNotStart as error:
        print(error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
