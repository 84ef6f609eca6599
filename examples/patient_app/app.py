#!/usr/bin/env python3
"""A small patient app for the GP Online Services Gateway.

Signs in through the dev identity provider with the OAuth 2.0 authorization-code flow and PKCE
(RFC 6749 section 4.1, RFC 7636, S256), asks the gateway what the person may do
(`GET /$my-access`), and reads each Patient record they may see (`GET /Patient/{id}`).

    python3 app.py [BASE_URL] [--nhs-number N]

BASE_URL is the gateway (default http://127.0.0.1:8080). Standard library only. Prints what
the person may do and the records read; exits 1 on any failure (a refused sign-in, an error
from the gateway, an answer that is not what the contract says).
"""
import argparse
import base64
import hashlib
import hmac
import json
import re
import secrets
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Optional

CLIENT_ID = "example-patient-app"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
FHIR_JSON = "application/fhir+json"
TIMEOUT = 10  # seconds for one request
# A FHIR logical id (http://hl7.org/fhir/R4/datatypes.html#id): safe to put in a URL path.
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

RELATIONSHIPS = {  # v3 RoleCode, as proxy roles carry them
    "self": "yourself",
    "MTH": "as their mother",
    "FTH": "as their father",
    "PRN": "as their parent",
    "CHILD": "as their child",
    "GUARD": "as their guardian",
    "CAREGIVER": "as their carer",
    "SPS": "as their spouse",
}


class Failure(Exception):
    """Something the app cannot go on from: printed, and the app exits 1."""


# --- HTTP -------------------------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The app reads the authorization endpoint's redirect itself: it never follows one."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    def json(self, what):
        try:
            return json.loads(self.body)
        except ValueError:
            raise Failure(f"{what}: the answer ({self.status}) is not JSON: {self.body[:200]!r}") from None


def http(method, url, headers=None, data=None):
    request = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with _opener.open(request, timeout=TIMEOUT) as response:
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:  # 3xx (not followed), 4xx and 5xx
        with error:
            return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())
    except (urllib.error.URLError, OSError) as error:
        raise Failure(f"{method} {url}: {getattr(error, 'reason', error)}") from None


def gateway_error(answer):
    """The stable code and text of a gateway OperationOutcome, or the start of the body."""
    try:
        issue = json.loads(answer.body)["issue"][0]
        code = issue.get("details", {}).get("coding", [{}])[0].get("code", issue.get("code"))
        return f"{code}: {issue.get('details', {}).get('text', '')}".strip()
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return answer.body[:300].decode(errors="replace")


def oauth_error(answer):
    try:
        body = json.loads(answer.body)
        return f"{body['error']}" + (f" ({body['error_description']})" if body.get("error_description") else "")
    except (ValueError, KeyError, TypeError):
        return answer.body[:300].decode(errors="replace")


# --- Sign-in: authorization code with PKCE ------------------------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_pair():
    """A code verifier (RFC 7636 section 4.1: 43 to 128 unreserved characters) and its S256 challenge."""
    verifier = b64url(secrets.token_bytes(48))  # 64 characters
    return verifier, b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def discover(base):
    url = f"{base}/dev-idp/patient/.well-known/openid-configuration"
    answer = http("GET", url, {"Accept": "application/json"})
    if answer.status != 200:
        raise Failure(f"discovery: GET {url} answered {answer.status}")
    config = answer.json("discovery")
    for key in ("authorization_endpoint", "token_endpoint"):
        value = config.get(key) if isinstance(config, dict) else None
        if not isinstance(value, str) or urllib.parse.urlsplit(value).scheme not in ("http", "https"):
            raise Failure(f"discovery: {url} has no usable {key} ({value!r})")
    methods = config.get("code_challenge_methods_supported")
    if methods is not None and "S256" not in methods:
        raise Failure(f"discovery: the provider does not take S256 challenges ({methods})")
    return config


def with_query(url, params):
    split = urllib.parse.urlsplit(url)
    query = "&".join(q for q in (split.query, urllib.parse.urlencode(params)) if q)
    return urllib.parse.urlunsplit(split._replace(query=query))


def authorize(config, redirect_uri, nhs_number, state, challenge):
    """The authorization request; returns the code from the redirect to redirect_uri."""
    url = with_query(config["authorization_endpoint"], {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "login_hint": nhs_number,
    })
    answer = http("GET", url, {"Accept": "application/json"})
    if answer.status not in (302, 303):
        detail = oauth_error(answer) if answer.status < 500 else answer.body[:200]
        raise Failure(f"sign-in: the authorization endpoint answered {answer.status}, not a redirect: {detail}")
    location = answer.headers.get("location")
    if not location:
        raise Failure(f"sign-in: the authorization endpoint's {answer.status} has no Location")
    location = urllib.parse.urljoin(config["authorization_endpoint"], location)
    got, want = urllib.parse.urlsplit(location), urllib.parse.urlsplit(redirect_uri)
    if (got.scheme, got.netloc, got.path) != (want.scheme, want.netloc, want.path):
        raise Failure(f"sign-in: redirected to {got.scheme}://{got.netloc}{got.path}, not to {redirect_uri}")
    query = urllib.parse.parse_qs(got.query, keep_blank_values=True)
    returned_state = query.get("state", [""])
    state_matches = len(returned_state) == 1 and hmac.compare_digest(returned_state[0], state)
    if "error" in query:  # RFC 6749 section 4.1.2.1
        description = query.get("error_description", [""])[0]
        raise Failure(f"sign-in refused: {query['error'][0]}" + (f" ({description})" if description else "")
                      + ("" if state_matches else " [and the redirect's state is not the one sent]"))
    if not state_matches:
        raise Failure("sign-in: the redirect's state is not the one sent (a forged or mixed-up answer)")
    issuer = query.get("iss")
    if issuer and config.get("issuer") and issuer[0] != config["issuer"]:
        raise Failure(f"sign-in: the redirect names issuer {issuer[0]}, discovery says {config['issuer']}")
    code = query.get("code", [])
    if len(code) != 1 or not code[0]:
        raise Failure(f"sign-in: the redirect carries no code ({sorted(query)})")
    return code[0]


def exchange(config, code, redirect_uri, verifier):
    form = urllib.parse.urlencode({
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": CLIENT_ID,
        "code_verifier": verifier,
    }).encode()
    answer = http("POST", config["token_endpoint"], {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }, form)
    if answer.status != 200:
        raise Failure(f"sign-in: the token endpoint answered {answer.status}: {oauth_error(answer)}")
    token = answer.json("token endpoint")
    if not isinstance(token, dict) or not isinstance(token.get("access_token"), str) or not token["access_token"]:
        raise Failure("sign-in: the token endpoint's answer has no access_token")
    if str(token.get("token_type", "")).lower() != "bearer":
        raise Failure(f"sign-in: token_type is {token.get('token_type')!r}, not Bearer")
    return token


def sign_in(base, nhs_number, port=0):
    config = discover(base)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    # The loopback port the redirect names (RFC 8252 section 7.3) is held for the sign-in so it
    # is really this app's. The dev provider signs in without a login page, so the app reads
    # the redirect from the authorization endpoint's answer instead of waiting on this socket.
    with socket.socket() as callback:
        callback.bind(("127.0.0.1", port))
        callback.listen(1)
        redirect_uri = f"http://127.0.0.1:{callback.getsockname()[1]}/callback"
        code = authorize(config, redirect_uri, nhs_number, state, challenge)
        token = exchange(config, code, redirect_uri, verifier)
    return config, token


# --- $my-access ---------------------------------------------------------------------------------

@dataclass
class Access:
    """One person the signed-in user may act for (themselves, or someone they are a proxy for)."""
    patient_id: str
    display: str
    nhs_number: Optional[str]
    relationship: str
    practice: Optional[str]
    account_status: str
    role: Optional[str] = None
    role_status: Optional[str] = None
    services: dict = field(default_factory=dict)
    record_access: dict = field(default_factory=dict)
    pending_review: Optional[str] = None
    reason: Optional[str] = None


def _value(parameter):
    for key, value in parameter.items():
        if key.startswith("value"):
            return value
    return None


def parse_my_access(parameters):
    """The `access` entries of a `$my-access` Parameters resource."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise Failure(f"$my-access: expected a Parameters resource, got {str(parameters)[:200]}")
    entries = []
    for n, parameter in enumerate(parameters.get("parameter", []), 1):
        if parameter.get("name") != "access":
            continue
        parts = {}
        for part in parameter.get("part", []):
            if "part" in part:
                parts[part.get("name")] = {p.get("name"): _value(p) for p in part["part"]}
            else:
                parts[part.get("name")] = _value(part)
        patient = parts.get("patient")
        reference = patient.get("reference", "") if isinstance(patient, dict) else ""
        kind, _, pid = reference.partition("/")
        if kind != "Patient" or not FHIR_ID.match(pid):
            raise Failure(f"$my-access: access entry {n} has no Patient reference ({patient!r})")
        for required in ("relationship", "accountStatus"):
            if not isinstance(parts.get(required), str):
                raise Failure(f"$my-access: access entry {n} ({reference}) has no {required}")
        identifier = patient.get("identifier") or {}
        role = parts.get("role")
        review = parts.get("pendingReview")
        entries.append(Access(
            patient_id=pid,
            display=patient.get("display") or reference,
            nhs_number=identifier.get("value") if identifier.get("system") == NHS_NUMBER_SYSTEM else None,
            relationship=parts["relationship"],
            practice=parts.get("practice"),
            account_status=parts["accountStatus"],
            role=role.get("reference") if isinstance(role, dict) else None,
            role_status=parts.get("roleStatus"),
            services=parts.get("services") if isinstance(parts.get("services"), dict) else {},
            record_access=parts.get("recordAccess") if isinstance(parts.get("recordAccess"), dict) else {},
            pending_review=review.get("reference") if isinstance(review, dict) else None,
            reason=parts.get("reason"),
        ))
    return entries


def standing(entry):
    """How the person reaches the patient now: their role's status for a proxy, the patient's
    own account otherwise."""
    return entry.role_status or entry.account_status


def describe(entry):
    who = f"{entry.display}" + (f" (NHS number {entry.nhs_number})" if entry.nhs_number else "")
    how = RELATIONSHIPS.get(entry.relationship, f"as {entry.relationship}")
    lines = [f"  {who}, {how}" + (f", at practice {entry.practice}" if entry.practice else "")]
    lines.append(f"    online access: {standing(entry)}"
                 + (f" (through proxy role {entry.role})" if entry.role else "")
                 + (f" ({entry.reason})" if entry.reason else ""))
    if entry.services:
        # On and off; the `...Level` parts beside them say how far (view or manage).
        may = [name for name, on in entry.services.items() if on is True]
        may_not = [name for name, on in entry.services.items() if on is False]
        lines.append("    services: " + (", ".join(may) if may else "none")
                     + (f" (not {', '.join(may_not)})" if may and may_not else ""))
    level = entry.record_access.get("level")
    if level:
        since = entry.record_access.get("from")
        lines.append(f"    record access: {level}" + (f" from {since}" if since else ""))
    if entry.pending_review:
        lines.append(f"    waiting for the practice to review a request ({entry.pending_review})")
    return "\n".join(lines)


def my_access(base, token):
    answer = http("GET", f"{base}/$my-access", {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON})
    if answer.status != 200:
        raise Failure(f"GET /$my-access answered {answer.status}: {gateway_error(answer)}")
    return parse_my_access(answer.json("$my-access"))


def read_patient(base, token, entry):
    answer = http("GET", f"{base}/Patient/{entry.patient_id}", {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON})
    if answer.status != 200:
        raise Failure(f"GET /Patient/{entry.patient_id} answered {answer.status}: {gateway_error(answer)}")
    patient = answer.json(f"Patient/{entry.patient_id}")
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient" or patient.get("id") != entry.patient_id:
        raise Failure(f"GET /Patient/{entry.patient_id} returned {str(patient)[:200]}")
    numbers = [i.get("value") for i in patient.get("identifier", []) if i.get("system") == NHS_NUMBER_SYSTEM]
    if entry.nhs_number and entry.nhs_number not in numbers:
        raise Failure(f"Patient/{entry.patient_id} has NHS number {numbers}, $my-access said {entry.nhs_number}")
    return patient


def summary(patient):
    name = (patient.get("name") or [{}])[0]
    full = " ".join(name.get("given", []) + [name.get("family", "")]).strip() or "(no name)"
    numbers = [i.get("value") for i in patient.get("identifier", []) if i.get("system") == NHS_NUMBER_SYSTEM]
    gp = (patient.get("generalPractitioner") or [{}])[0]
    practice = (gp.get("identifier") or {}).get("value") or gp.get("reference")
    parts = [full]
    if patient.get("birthDate"):
        parts.append(f"born {patient['birthDate']}")
    if patient.get("gender"):
        parts.append(patient["gender"])
    if numbers:
        parts.append(f"NHS number {numbers[0]}")
    if practice:
        parts.append(f"registered at {practice}")
    version = (patient.get("meta") or {}).get("versionId")
    return ", ".join(parts) + (f" (version {version})" if version else "")


def run(base, nhs_number, port=0):
    base = base.rstrip("/")
    config, token = sign_in(base, nhs_number, port)
    access_token = token["access_token"]
    print(f"Signed in as NHS number {nhs_number} with {config.get('issuer', base)}"
          f" (scope {token.get('scope', '?')}, token valid {token.get('expires_in', '?')} s)")

    entries = my_access(base, access_token)
    selves = [e for e in entries if e.relationship == "self"]
    if any(e.nhs_number and e.nhs_number != nhs_number for e in selves):
        raise Failure(f"$my-access lists {[e.nhs_number for e in selves]} as yourself, signed in as {nhs_number}")
    if not entries:
        print("\nYou have no GP online services here: the gateway knows no patient record for you.")
        return 0
    print(f"\nYou may act for {len(entries)} patient{'s' if len(entries) != 1 else ''}:")
    for entry in entries:
        print(describe(entry))

    readable = [e for e in entries if standing(e) == "active"]
    print("\nRecords:")
    for entry in entries:
        if standing(entry) != "active":
            print(f"  not read Patient/{entry.patient_id}: online access is {standing(entry)}"
                  + (f" ({entry.reason})" if entry.reason else ""))
    for entry in readable:
        print(f"  read Patient/{entry.patient_id}: {summary(read_patient(base, access_token, entry))}")
    print(f"\n{len(readable)} record{'s' if len(readable) != 1 else ''} read")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", nargs="?", default="http://127.0.0.1:8080", help="the gateway's base URL")
    parser.add_argument("--nhs-number", default="9990000018", help="who signs in (the dev provider's login_hint)")
    parser.add_argument("--redirect-port", type=int, default=0, help="loopback port for the redirect URI (0: any free one)")
    args = parser.parse_args(argv)
    if urllib.parse.urlsplit(args.base).scheme not in ("http", "https"):
        parser.error(f"base URL must be http or https: {args.base}")
    try:
        return run(args.base, args.nhs_number, args.redirect_port)
    except Failure as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
