"""Captures request and response examples for the OpenAPI document from the running dev profile,
so the document shows what the server really answers. Writes openapi/examples.json, which the
gateway attaches to the generated document (src/http/mod.rs). Re-run after changing a response
shape, then regenerate openapi/openapi.json:

    python3 openapi/capture_examples.py && cargo run -q -- openapi > openapi/openapi.json
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".ci"))
from devgateway import DevGateway, free_port  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "examples.json")
FHIR = "application/fhir+json"


def call(base, method, path, token, body=None, headers=None, content_type=FHIR):
    data = b"" if body is None and method != "GET" else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, method=method, data=data)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Accept", FHIR)
    # The proxy (VRS) resources require a request id of the caller's own.
    if path.split("?")[0].split("/")[1] in ("Consent", "RelatedPerson", "QuestionnaireResponse"):
        request.add_header("X-Request-ID", str(uuid.uuid4()))
    if body is not None:
        request.add_header("Content-Type", content_type)
    for k, v in (headers or {}).items():
        request.add_header(k, v)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.load(error)


def put(url, body):
    request = urllib.request.Request(url, method="PUT", data=json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request, timeout=10).close()


def main():
    examples = {}
    emis = free_port()
    # One attempt per job, so a Task can be failed and retried while the capture runs.
    with DevGateway(env={"GATEWAY_SUPPLIERS__MAX_ATTEMPTS": "1",
                         "GATEWAY_SUPPLIERS__SIMULATOR_EMIS_BIND": f"127.0.0.1:{emis}"}) as gw:
        base = gw.base
        t = {p: gw.token(p) for p in ["staff-emis", "clinician-emis", "patient-p9", "staff-vrs", "system-app"]}

        def record(key, method, path, token, body=None, headers=None, expect=200, content_type=FHIR):
            status, response_headers, answer = call(base, method, path, t.get(token, token), body, headers,
                                                    content_type)
            if status != expect:
                raise SystemExit(f"{method} {path}: {status} {answer}")
            entry = {"status": str(status), "response": answer}
            if body is not None:
                entry["request"] = body
            examples[key] = entry
            return answer, response_headers

        # The seeded accounts are confirmed by the simulators first.
        deadline = time.time() + 30
        while time.time() < deadline:
            _, _, access = call(base, "GET", "/$my-access", t["patient-p9"])
            if "active" in json.dumps(access):
                break
            time.sleep(0.3)
        record("GET /$my-access", "GET", "/$my-access", "patient-p9")
        record("GET /Patient/{id}/$service-access", "GET",
               "/Patient/patient-jane-smith/$service-access?service=appointments", "patient-p9")
        record("GET /$explain-access", "GET", "/$explain-access?patient=patient-jane-smith&action=read-patient",
               "clinician-emis")
        record("GET /AuditEvent", "GET", "/AuditEvent?patient=patient-jane-smith&_count=1", "clinician-emis")
        record("GET /AuditEvent/$verify", "GET", "/AuditEvent/$verify", "clinician-emis")

        organization, headers = record("GET /Organization/{id}", "GET", "/Organization/practice-a81001", "staff-emis")
        record("GET /Organization", "GET", "/Organization?identifier=A81001", "staff-emis")
        record("PUT /Organization/{id}", "PUT", "/Organization/practice-a81001", "staff-emis", organization,
               {"If-Match": headers.get("ETag") or headers.get("etag")})

        new = {
            "resourceType": "Patient",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000239"}],
            "name": [{"use": "official", "family": "Ahmed", "given": ["Sara"]}],
            "gender": "female",
            "birthDate": "1988-04-12",
            "telecom": [{"system": "email", "value": "sara.ahmed@example.org"}],
            "generalPractitioner": [{"reference": "Organization/practice-a81001"}],
        }
        created, _ = record("POST /Patient", "POST", "/Patient", "staff-emis", new, expect=201)
        record("GET /Patient/{id}", "GET", f"/Patient/{created['id']}", "staff-emis")
        changed = dict(created, name=[{"use": "official", "family": "Ahmed", "given": ["Sara", "Noor"]}])
        record("PUT /Patient/{id}", "PUT", f"/Patient/{created['id']}", "staff-emis", changed,
               {"If-Match": 'W/"1"'})
        record("GET /Patient/{id}/_history", "GET", f"/Patient/{created['id']}/_history", "staff-emis")
        record("GET /Patient/{id}/_history/{vid}", "GET", f"/Patient/{created['id']}/_history/1", "staff-emis")
        record("GET /Patient", "GET", "/Patient?family=smith&_count=1", "staff-emis")
        upsert = dict(new, identifier=[{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000247"}],
                      name=[{"use": "official", "family": "Okafor", "given": ["Chidi"]}])
        upsert.pop("telecom")
        record("PUT /Patient", "PUT", "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000247",
               "staff-emis", upsert, expect=201)

        record("GET /Patient/{id}/$online-account", "GET", "/Patient/patient-jane-smith/$online-account", "staff-emis")
        record("GET /Patient/{id}/$registration-letter", "GET", "/Patient/patient-jane-smith/$registration-letter",
               "staff-emis")
        record("POST /Patient/{id}/$reset-online-account", "POST", "/Patient/patient-jane-smith/$reset-online-account",
               "staff-emis", expect=202)
        call(base, "POST", "/Patient/patient-amir-khan/$disable-online-account", t["staff-emis"],
             {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "lost phone"}]})
        record("POST /Patient/{id}/$enable-online-account", "POST", "/Patient/patient-amir-khan/$enable-online-account",
               "staff-emis", expect=202)
        tasks, _ = record("GET /Task", "GET", "/Task?patient=patient-jane-smith&_count=1", "staff-emis")
        task_id = tasks["entry"][0]["resource"]["id"]
        record("GET /Task/{id}", "GET", f"/Task/{task_id}", "staff-emis")

        roles, _ = record("GET /Consent", "GET", "/Consent?performer:identifier=9000000017", "system-app")
        record("GET /Consent/{id}", "GET", f"/Consent/{roles['entry'][0]['resource']['id']}", "system-app")
        record("GET /RelatedPerson", "GET", "/RelatedPerson?identifier=9000000017", "staff-vrs")
        nhs = "https://fhir.nhs.uk/Id/nhs-number"
        role = {
            "resourceType": "Consent",
            "status": "proposed",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "INFA"}]}],
            "patient": {"type": "Patient", "identifier": {"system": nhs, "value": "9000010063"}},
            "dateTime": "2026-11-30T10:00:00Z",
            "performer": [{"identifier": {"system": nhs, "value": "9000010551"}}],
            "policyRule": {"coding": [{"system": "https://fhir.nhs.uk/England/CodeSystem/England-NHSProxyLegalBasis",
                                       "code": "consent"}]},
            "provision": {"type": "permit", "actor": [{"reference": {
                "type": "RelatedPerson", "identifier": {"system": nhs, "value": "9000010551"}}}]},
            "extension": [
                {"url": "https://fhir.nhs.uk/England/StructureDefinition/Extension-England-Consent-Status-Reason",
                 "valueCodeableConcept": {"coding": [{
                     "system": "https://fhir.nhs.uk/England/CodeSystem/England-ConsentStatusReason",
                     "code": "APPLICATION_SUBMITTED"}]}},
                {"url": "https://hl7.org/fhir/5.0/StructureDefinition/extension-Consent.grantor",
                 "valueReference": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                                   "value": "G8101234"}}},
            ],
        }
        record("POST /Consent", "POST", "/Consent", "system-app", role, expect=201)
        record("PATCH /Consent/{id}", "PATCH", "/Consent/74eed847-ca25-4e76-8cf2-f2c2d7842a7a", "system-app", [
            {"op": "replace", "path": "/status", "value": "inactive"},
            {"op": "add", "path": "/extension/-", "value": [{
                "url": "https://fhir.nhs.uk/England/StructureDefinition/Extension-England-Consent-Status-Reason",
                "valueCodeableConcept": {"coding": [{
                    "system": "https://fhir.nhs.uk/England/CodeSystem/England-ConsentStatusReason",
                    "code": "ROLE_DEACTIVATED_PATIENT_REQUEST"}]}}]},
        ], content_type="application/json-patch+json")

        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                               "vrs-request-examples.json")) as f:
            form = json.load(f)["mother-child"]
        source = form["source"]["identifier"]["value"]
        _, headers = record("POST /QuestionnaireResponse", "POST", "/QuestionnaireResponse", gw.person(source), form)
        location = headers.get("Location") or headers.get("location") or ""
        record("GET /QuestionnaireResponse/{id}", "GET", f"/QuestionnaireResponse/{location.rstrip('/').split('/')[-1]}",
               gw.person(source))

        # A Task that failed at the supplier (which is down), retried once it is back.
        faults = f"http://127.0.0.1:{emis}/admin/faults"
        put(faults, {"down": True})
        _, _, reset = call(base, "POST", "/Patient/patient-jane-smith/$reset-online-account", t["staff-emis"],
                           {"resourceType": "Parameters"})
        task = next(p for p in reset["parameter"] if p["name"] == "task")
        task_id = task["valueReference"]["reference"].split("/")[-1]
        deadline = time.time() + 30
        while time.time() < deadline:
            _, _, state = call(base, "GET", f"/Task/{task_id}", t["staff-emis"])
            if state.get("status") == "failed":
                break
            time.sleep(0.3)
        put(faults, {"down": False})
        record("POST /Task/{id}/$retry", "POST", f"/Task/{task_id}/$retry", "staff-emis")

        for path in ["/health/live", "/health/ready", "/metadata"]:
            record(f"GET {path}", "GET", path, "staff-emis")
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            lines = [line for line in response.read().decode().splitlines() if "gateway_http_requests_total" in line]
        examples["GET /metrics"] = {"status": "200", "response": "\n".join(lines[:6]) + "\n"}
    # Shown as the dev profile's default address, whatever port the capture ran on.
    text = json.dumps(examples, indent=2, sort_keys=True).replace(base, "http://127.0.0.1:8080")
    with open(OUT, "w") as out:
        out.write(text + "\n")
    print(f"{len(examples)} examples written to {OUT}")


if __name__ == "__main__":
    main()
