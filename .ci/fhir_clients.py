"""Drives the gateway with two off-the-shelf FHIR clients: fhirpy (SyncFHIRClient) and the
SMART on FHIR Python client (fhirclient).

Starts the debug binary's dev profile on a free loopback port with a throwaway data directory,
signs every call with a staff-emis token (practice staff at A81001 who may create and update
patients), and checks what each client gets back against FHIR R4 (http.html, search.html):
create, read, update, search with paging, by identifier, `_sort`, `_count`, the audit trail in
large pages, conditional create with `If-None-Exist`, and the CapabilityStatement. Every check asserts on the answer (ids,
versions, counts, names, status codes); where the server answers differently from R4 in a way a
client trips on, the check fails and prints the exact request and response.

Prints one line per check and "N passed, N failed"; exits non-zero on any failure. Talks only to
127.0.0.1, stops the gateway on the way out, and gives up after TIME_LIMIT seconds.

    .ci/.venv/bin/pip install fhirpy fhirclient requests
    .ci/.venv/bin/python .ci/fhir_clients.py      # GP_GATEWAY_BINARY=path to run another build
"""
import datetime
import signal
import sys
import urllib.parse
import warnings

import requests
from fhirclient import server as fhirclient_server
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.patient import Patient as FCPatient
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound, OperationOutcome

from devgateway import DevGateway, GatewayDidNotStart

TIME_LIMIT = 240  # seconds for the whole run, gateway start included
REQUEST_TIMEOUT = 10  # seconds for one HTTP request

NHS = "https://fhir.nhs.uk/Id/nhs-number"
NEW_NHS = "9990000239"  # valid (Modulus 11), not in the seed: created with fhirpy
CONDITIONAL_NHS = "9990000247"  # valid, not in the seed: conditionally created
UNUSED_NHS = "9990000255"  # valid, not in the seed, never created
UPSERT_NHS = "9990000263"  # valid, not in the seed: created, then updated, by conditional update


# ---------------------------------------------------------------------------------------------
# Every HTTP exchange either client makes goes through requests.Session.request (fhirpy calls
# requests.request, fhirclient a Session): record it, so that a failed check can show exactly
# what was sent and what came back, refuse anything but loopback, and bound each request.

EXCHANGES = []
_original_request = requests.Session.request


def _recording_request(self, method, url, *args, **kwargs):
    host = urllib.parse.urlsplit(url).hostname
    if host != "127.0.0.1":
        raise RuntimeError(f"refusing a request to {url}: this script talks only to 127.0.0.1")
    kwargs.setdefault("timeout", REQUEST_TIMEOUT)
    response = _original_request(self, method, url, *args, **kwargs)
    request = response.request
    EXCHANGES.append({
        "method": request.method,
        "url": request.url,
        "request_headers": {k: ("Bearer <staff-emis token>" if k.lower() == "authorization" else v)
                            for k, v in request.headers.items()
                            if k.lower() not in ("user-agent", "accept-encoding", "connection", "content-length")},
        "request_body": request.body.decode() if isinstance(request.body, bytes) else request.body,
        "status": response.status_code,
        "response_headers": {k: v for k, v in response.headers.items()
                             if k.lower() in ("content-type", "location", "etag", "last-modified")},
        "response_body": response.text,
    })
    return response


requests.Session.request = _recording_request


def show(exchange, limit=1500):
    def cut(text):
        text = text or ""
        return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"

    lines = [f"    > {exchange['method']} {exchange['url']}"]
    lines += [f"    > {k}: {v}" for k, v in exchange["request_headers"].items()]
    if exchange["request_body"]:
        lines.append(f"    > {cut(exchange['request_body'])}")
    lines.append(f"    < {exchange['status']}")
    lines += [f"    < {k}: {v}" for k, v in exchange["response_headers"].items()]
    if exchange["response_body"]:
        lines.append(f"    < {cut(exchange['response_body'])}")
    return "\n".join(lines)


def last(method=None):
    """The last exchange (with that method)."""
    for exchange in reversed(EXCHANGES):
        if method is None or exchange["method"] == method:
            return exchange
    raise AssertionError(f"no {method or ''} request was made")


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def instant(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------------------------------------

class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, check):
        start = len(EXCHANGES)
        try:
            detail = check()
            self.passed += 1
            print(f"pass  {name}" + (f": {detail}" if detail else ""))
        except Exception as error:  # noqa: BLE001 - report every failure, then exit non-zero
            self.failed += 1
            print(f"FAIL  {name}: {type(error).__name__}: {error}")
            made = EXCHANGES[start:]
            if made:
                print(f"    the check's last request{'s' if len(made) > 1 else ''} ({len(made)} made):")
                for exchange in made[-2:]:
                    print(show(exchange))
        sys.stdout.flush()


def new_patient(nhs_number, family, given):
    return {
        "resourceType": "Patient",
        "identifier": [{"system": NHS, "value": nhs_number}],
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": "female",
        "birthDate": "1991-02-03",
        "telecom": [{"system": "email", "value": "test@example.org"}],
        "generalPractitioner": [{"reference": "Organization/practice-a81001"}],
    }


def fhirpy_checks(checks, base, token):
    client = SyncFHIRClient(base, authorization=f"Bearer {token}")
    state = {}

    def need(key):
        expect(key in state, f"an earlier check did not produce {key}")
        return state[key]

    def capability():
        cs = client.execute("metadata", method="get")
        expect(cs["resourceType"] == "CapabilityStatement", f"resourceType {cs['resourceType']}")
        expect(cs["fhirVersion"].startswith("4.0"), f"fhirVersion {cs['fhirVersion']}")
        expect(cs["kind"] == "instance", f"kind {cs['kind']}")
        rest = cs["rest"][0]
        expect(rest["mode"] == "server", f"rest[0].mode {rest['mode']}")
        patient = [r for r in rest["resource"] if r["type"] == "Patient"]
        expect(len(patient) == 1, f"{len(patient)} Patient entries in rest[0].resource")
        interactions = {i["code"] for i in patient[0]["interaction"]}
        missing = {"read", "create", "update", "search-type"} - interactions
        expect(not missing, f"Patient interactions lack {sorted(missing)} (have {sorted(interactions)})")
        expect(patient[0].get("conditionalCreate") is True, "Patient.conditionalCreate is not true")
        params = {p["name"] for p in patient[0]["searchParam"]}
        missing = {"identifier", "family", "_sort", "_count"} - params
        expect(not missing, f"Patient search parameters lack {sorted(missing)}")
        return f"FHIR {cs['fhirVersion']}, Patient {sorted(interactions)}, conditionalCreate, {len(params)} search parameters"

    def create():
        patient = client.resource("Patient", **new_patient(NEW_NHS, "Smith", "Alexandra"))
        patient.save()
        exchange = last()
        expect(exchange["method"] == "POST" and exchange["url"].startswith(f"{base}/Patient"),
               f"fhirpy sent {exchange['method']} {exchange['url']}")
        expect(exchange["status"] == 201, f"status {exchange['status']}, not 201 Created")
        expect(patient.id, "the created Patient has no id")
        expect(patient["meta"]["versionId"] == "1", f"meta.versionId {patient['meta'].get('versionId')}")
        location = exchange["response_headers"].get("location", "")
        expect(location.rstrip("/").endswith(f"Patient/{patient.id}/_history/1"),
               f"Location {location!r} does not name Patient/{patient.id}/_history/1 (R4 http.html#create)")
        expect(exchange["response_headers"].get("etag") == 'W/"1"', f"ETag {exchange['response_headers'].get('etag')}")
        expect(patient["identifier"][0]["value"] == NEW_NHS, f"identifier {patient['identifier']}")
        expect(patient["name"][0]["family"] == "Smith", f"name {patient['name']}")
        state["id"] = patient.id
        state["created"] = patient["meta"]["lastUpdated"]
        return f"Patient/{patient.id} version 1, Location {location}"

    def read():
        pid = need("id")
        patient = client.reference("Patient", pid).to_resource()
        expect(last()["method"] == "GET" and last()["url"].split("?")[0] == f"{base}/Patient/{pid}",
               f"fhirpy sent {last()['method']} {last()['url']}")
        expect(patient.id == pid, f"id {patient.id}")
        expect(patient["meta"]["versionId"] == "1", f"meta.versionId {patient['meta']['versionId']}")
        expect(patient["name"][0]["given"] == ["Alexandra"], f"given {patient['name'][0]['given']}")
        expect(patient["birthDate"] == "1991-02-03", f"birthDate {patient['birthDate']}")
        expect(patient["gender"] == "female", f"gender {patient['gender']}")
        expect([i["value"] for i in patient["identifier"] if i["system"] == NHS] == [NEW_NHS],
               f"identifier {patient['identifier']}")
        gp = patient["generalPractitioner"][0]
        expect(gp.get("reference") == "Organization/practice-a81001", f"generalPractitioner {gp}")
        expect(last()["response_headers"].get("etag") == 'W/"1"', f"ETag {last()['response_headers'].get('etag')}")
        state["patient"] = patient
        return f"Patient/{pid}: {patient['name'][0]['given'][0]} {patient['name'][0]['family']}, version 1"

    def update():
        patient = need("patient")
        patient["name"][0]["given"] = ["Alexandra", "Rose"]
        patient.save()
        exchange = last()
        expect(exchange["method"] == "PUT" and exchange["url"].split("?")[0] == f"{base}/Patient/{state['id']}",
               f"fhirpy sent {exchange['method']} {exchange['url']}")
        expect(exchange["status"] == 200, f"status {exchange['status']}, not 200")
        expect(patient["meta"]["versionId"] == "2", f"meta.versionId after PUT {patient['meta']['versionId']}")
        expect(instant(patient["meta"]["lastUpdated"]) > instant(state["created"]),
               f"meta.lastUpdated {patient['meta']['lastUpdated']} is not after {state['created']}")
        expect(exchange["response_headers"].get("etag") == 'W/"2"', f"ETag {exchange['response_headers'].get('etag')}")
        again = client.reference("Patient", state["id"]).to_resource()
        expect(again["meta"]["versionId"] == "2", f"read after update: meta.versionId {again['meta']['versionId']}")
        expect(again["name"][0]["given"] == ["Alexandra", "Rose"], f"read after update: given {again['name'][0]['given']}")
        expect(again["identifier"][0]["value"] == NEW_NHS, f"read after update: identifier {again['identifier']}")
        return f"PUT -> version 2, lastUpdated {patient['meta']['lastUpdated']}, given {again['name'][0]['given']}"

    def paging():
        pid = need("id")
        everyone = client.resources("Patient").search(family="smith").limit(100).fetch_raw()
        expected = [e["resource"]["id"] for e in everyone.get("entry", [])]
        expect(everyone["total"] == len(expected), f"total {everyone['total']} but {len(expected)} entries at _count=100")
        expect({pid, "patient-jane-smith"} <= set(expected), f"family=smith found {expected}")
        expect(len(expected) > 2, f"only {len(expected)} Smiths: nothing to page")
        searchset = client.resources("Patient").search(family="smith").limit(2)
        first = searchset.fetch_raw()
        expect(first["type"] == "searchset", f"Bundle.type {first['type']}")
        expect(first["total"] == len(expected), f"page 1 total {first['total']}, expected {len(expected)}")
        expect(len(first.get("entry", [])) == 2, f"page 1 has {len(first.get('entry', []))} entries at _count=2")
        links = {link["relation"]: link["url"] for link in first.get("link", [])}
        expect("next" in links, f"page 1 has no next link: {first.get('link')}")
        start = len(EXCHANGES)
        every = searchset.fetch_all()
        pages = EXCHANGES[start:]
        ids = [p.id for p in every]
        expect(len(ids) == len(set(ids)), f"paging repeated a patient: {ids}")
        expect(sorted(ids) == sorted(expected), f"paging gave {ids}, one page gave {expected}")
        want_pages = -(-len(expected) // 2)
        expect(len(pages) == want_pages, f"{len(pages)} page requests for {len(expected)} results at _count=2")
        expect(all(p["name"][0]["family"] == "Smith" for p in every), f"not all Smith: {[p['name'] for p in every]}")
        state["smiths"] = sorted(expected)
        return f"{len(ids)} Smiths over {len(pages)} pages of 2 (total {first['total']}), next {links['next']}"

    def by_identifier():
        pid = need("id")
        found = client.resources("Patient").search(identifier=f"{NHS}|{NEW_NHS}").fetch()
        expect([p.id for p in found] == [pid], f"identifier={NHS}|{NEW_NHS} found {[p.id for p in found]}")
        expect("identifier=https" in last()["url"], f"fhirpy sent {last()['url']}")
        one = client.resources("Patient").search(identifier=f"{NHS}|9990000018").get()
        expect(one.id == "patient-jane-smith", f"identifier 9990000018 is {one.id}")
        none = client.resources("Patient").search(identifier=f"{NHS}|{UNUSED_NHS}").fetch_raw()
        expect(none["total"] == 0 and not none.get("entry"), f"identifier {UNUSED_NHS}: total {none['total']}")
        return f"{NEW_NHS} -> Patient/{pid}, 9990000018 -> patient-jane-smith, {UNUSED_NHS} -> none"

    def sort():
        pid = need("id")
        everyone = client.resources("Patient").sort("-birthdate").limit(100).fetch_raw()
        expect("_sort=-birthdate" in last()["url"], f"fhirpy sent {last()['url']}")
        dates = [e["resource"]["birthDate"] for e in everyone["entry"]]
        expect(len(dates) == everyone["total"] and len(dates) > 2, f"{len(dates)} of {everyone['total']} patients")
        expect(dates == sorted(dates, reverse=True), f"_sort=-birthdate gave {dates}")
        by_given = client.resources("Patient").search(family="smith").sort("given").limit(100).fetch()
        given = [p["name"][0]["given"][0] for p in by_given]
        expect(given == sorted(given) and len(given) == len(need("smiths")), f"_sort=given gave {given}")
        expect(by_given[0].id == pid, f"Alexandra ({pid}) is not first by given name: {[p.id for p in by_given]}")
        newest = client.resources("Patient").sort("-_lastUpdated").limit(1).fetch()
        expect([p.id for p in newest] == [pid], f"_sort=-_lastUpdated first is {[p.id for p in newest]}, not {pid}")
        return f"-birthdate {dates[0]}..{dates[-1]} ({len(dates)}), given {given}, -_lastUpdated first {pid}"

    def count():
        smiths = need("smiths")
        one = client.resources("Patient").search(family="smith").limit(1).fetch_raw()
        expect(len(one.get("entry", [])) == 1, f"_count=1 gave {len(one.get('entry', []))} entries")
        expect(one["total"] == len(smiths), f"_count=1 total {one['total']}")
        nxt = [link["url"] for link in one["link"] if link["relation"] == "next"]
        expect(nxt and "_count=1" in nxt[0], f"_count=1 next link {nxt}")
        zero = client.resources("Patient").search(family="smith").limit(0).fetch_raw()
        # _count=0: the total only, no entries, as _summary=count
        expect(not zero.get("entry") and zero["total"] == len(smiths),
               f"_count=0 gave {len(zero.get('entry', []))} entries, total {zero.get('total')}")
        return f"_count=1: 1 entry of {one['total']}, next link; _count=0: total {zero['total']}, no entries"

    def audit_trail_large_pages():
        # Clients ask for large pages; R4 lets the server return fewer, and the self link says
        # how many it used. More than one page of events first, so that fetch_all pages on.
        for _ in range(110):
            client.resources("Patient").search(family="smith").limit(1).fetch_raw()
        first = client.resources("AuditEvent").limit(500).fetch_raw()
        own = [link["url"] for link in first["link"] if link["relation"] == "self"]
        expect(own and "_count=100" in own[0] and "_count=500" not in own[0], f"self link {own}")
        expect(len(first.get("entry", [])) == min(first["total"], 100),
               f"{len(first.get('entry', []))} entries of {first['total']}")
        events = client.resources("AuditEvent").limit(500).fetch_all()
        # Reading the trail adds to it, so it holds at least what the first page counted.
        expect(len(events) >= first["total"] > 100, f"fetch_all gave {len(events)} of {first['total']}")
        expect(all(e["resourceType"] == "AuditEvent" for e in events), "not every entry is an AuditEvent")
        return f"_count=500 taken as 100 (self link says so); fetch_all walked {len(events)} events in pages of 100"

    def searchset_count():
        smiths = need("smiths")
        try:
            n = client.resources("Patient").search(family="smith").count()
        except OperationOutcome as error:
            refused = last()
            lenient = SyncFHIRClient(base, authorization=f"Bearer {token}",
                                     extra_headers={"Prefer": "handling=lenient"})
            try:
                lenient.resources("Patient").search(family="smith").count()
                also = "with Prefer: handling=lenient the same search is answered"
            except OperationOutcome:
                also = f"and with Prefer: handling=lenient it is refused the same way ({last()['status']})"
            raise AssertionError(
                "SERVER DEVIATION: fhirpy's count() sends _count=0&_totalMethod=count; the gateway answers "
                f"{refused['status']} INVALID_SEARCH_PARAMETER for the unknown parameter _totalMethod, {also}. "
                "FHIR R4 search.html#errors: in general servers SHOULD ignore unknown or unsupported "
                "parameters, and Prefer: handling=lenient is how a client asks for exactly that. "
                f"fhirpy's message: {str(error)[:200]}") from None
        expect(n == len(smiths), f"count() is {n}, family=smith has {len(smiths)}")
        return f"count() = {n}"

    def conditional_match():
        pid = need("id")
        condition = f"identifier={NHS}|{NEW_NHS}"
        conditional = SyncFHIRClient(base, authorization=f"Bearer {token}", extra_headers={"If-None-Exist": condition})
        patient = conditional.resource("Patient", **new_patient(NEW_NHS, "Smith", "Alexandra"))
        patient.save()
        exchange = last()
        expect(exchange["method"] == "POST" and exchange["request_headers"].get("If-None-Exist") == condition,
               f"fhirpy sent {exchange['method']} with If-None-Exist {exchange['request_headers'].get('If-None-Exist')}")
        # R4 http.html#ccreate: one match -> the server ignores the post and returns 200 OK
        expect(exchange["status"] == 200, f"status {exchange['status']}, not 200 for a condition with one match")
        expect(patient.id == pid, f"answered Patient/{patient.id}, not the existing Patient/{pid}")
        expect(patient["meta"]["versionId"] == "2", f"meta.versionId {patient['meta']['versionId']}: the existing record changed")
        expect(patient["name"][0]["given"] == ["Alexandra", "Rose"], f"given {patient['name'][0]['given']}")
        found = client.resources("Patient").search(identifier=f"{NHS}|{NEW_NHS}").fetch()
        expect([p.id for p in found] == [pid], f"after the conditional create, {NEW_NHS} is {[p.id for p in found]}")
        return f"If-None-Exist {condition}: 200, the existing Patient/{pid} version 2, nothing created"

    def conditional_no_match():
        pid = need("id")
        condition = f"identifier={NHS}|{CONDITIONAL_NHS}"
        conditional = SyncFHIRClient(base, authorization=f"Bearer {token}", extra_headers={"If-None-Exist": condition})
        patient = conditional.resource("Patient", **new_patient(CONDITIONAL_NHS, "Nguyen", "Mai"))
        patient.save()
        exchange = last()
        expect(exchange["status"] == 201, f"status {exchange['status']}, not 201 for a condition with no match")
        expect(patient.id and patient.id != pid, f"created id {patient.id}")
        expect(patient["meta"]["versionId"] == "1", f"meta.versionId {patient['meta']['versionId']}")
        location = exchange["response_headers"].get("location", "")
        expect(f"Patient/{patient.id}" in location, f"Location {location!r}")
        again = client.reference("Patient", patient.id).to_resource()
        expect(again["name"][0]["family"] == "Nguyen" and again["identifier"][0]["value"] == CONDITIONAL_NHS,
               f"read back {again['name']} {again['identifier']}")
        return f"If-None-Exist {condition}: 201, Patient/{patient.id}"

    def conditional_several():
        condition = "family=smith"
        conditional = SyncFHIRClient(base, authorization=f"Bearer {token}", extra_headers={"If-None-Exist": condition})
        patient = conditional.resource("Patient", **new_patient(UNUSED_NHS, "Smith", "Zoe"))
        try:
            patient.save()
            raise AssertionError(f"If-None-Exist {condition} matching several was answered {last()['status']}, "
                                 f"Patient/{patient.id}")
        except MultipleResourcesFound:
            pass  # fhirpy's exception for 412
        expect(last()["status"] == 412, f"status {last()['status']}")
        found = client.resources("Patient").search(identifier=f"{NHS}|{UNUSED_NHS}").fetch_raw()
        expect(found["total"] == 0, f"{UNUSED_NHS} was created all the same")
        return f"If-None-Exist {condition}: 412 Precondition Failed, nothing created"

    def history():
        pid = need("id")
        bundle = client.execute(f"Patient/{pid}/_history", method="get")
        expect(bundle["resourceType"] == "Bundle" and bundle["type"] == "history", f"Bundle.type {bundle.get('type')}")
        versions = [e["resource"]["meta"]["versionId"] for e in bundle.get("entry", [])]
        expect(versions[-2:] == ["2", "1"] and versions == sorted(versions, key=int, reverse=True),
               f"history versions {versions}, expected newest first down to 1")
        expect(bundle["entry"][-1]["request"]["method"] == "POST", f"version 1 request {bundle['entry'][-1]['request']}")
        return f"{len(versions)} versions, newest first: {versions}"

    def vread():
        pid = need("id")
        first = client.execute(f"Patient/{pid}/_history/1", method="get")
        expect(first["meta"]["versionId"] == "1", f"vread 1: meta.versionId {first['meta']['versionId']}")
        expect(first["name"][0]["given"] == ["Alexandra"], f"vread 1: given {first['name'][0]['given']}")
        second = client.execute(f"Patient/{pid}/_history/2", method="get")
        expect(second["name"][0]["given"] == ["Alexandra", "Rose"], f"vread 2: given {second['name'][0]['given']}")
        return "version 1 as created, version 2 as updated"

    def conditional_update():
        search = client.resources("Patient").search(identifier=f"{NHS}|{UPSERT_NHS}")
        created, was_created = search.update(client.resource("Patient", **new_patient(UPSERT_NHS, "Upsert", "Ivy")))
        expect(last()["method"] == "PUT" and "identifier=" in last()["url"], f"fhirpy sent {last()['method']} {last()['url']}")
        expect(was_created and last()["status"] == 201, f"no match: status {last()['status']}, not 201")
        updated, was_created = search.update(client.resource("Patient", **new_patient(UPSERT_NHS, "Upsert", "Iris")))
        expect(not was_created and last()["status"] == 200, f"one match: status {last()['status']}, not 200")
        expect(updated.id == created.id, f"updated {updated.id}, created {created.id}")
        expect(updated["meta"]["versionId"] == "2", f"meta.versionId {updated['meta']['versionId']}")
        expect(updated["name"][0]["given"] == ["Iris"], f"given {updated['name'][0]['given']}")
        return f"no match: 201 Patient/{created.id}; one match: 200, version 2"

    checks.run("fhirpy: CapabilityStatement (GET /metadata)", capability)
    checks.run("fhirpy: create Patient (POST)", create)
    checks.run("fhirpy: read Patient", read)
    checks.run("fhirpy: update Patient (PUT)", update)
    checks.run("fhirpy: search family=smith with paging (limit(2), fetch_all)", paging)
    checks.run("fhirpy: search by identifier", by_identifier)
    checks.run("fhirpy: _sort", sort)
    checks.run("fhirpy: _count", count)
    checks.run("fhirpy: the audit trail in large pages (limit(500), fetch_all)", audit_trail_large_pages)
    checks.run("fhirpy: SearchSet.count()", searchset_count)
    # fhirpy's own SearchSet.get_or_create() puts the condition in the query string
    # (POST /Patient?identifier=...), which is not R4's conditional create: R4 puts it in
    # If-None-Exist, which fhirpy sends through extra_headers.
    checks.run("fhirpy: conditional create, one match (If-None-Exist)", conditional_match)
    checks.run("fhirpy: conditional create, no match (If-None-Exist)", conditional_no_match)
    checks.run("fhirpy: conditional create, several matches (If-None-Exist)", conditional_several)
    checks.run("fhirpy: history (GET /Patient/{id}/_history)", history)
    checks.run("fhirpy: vread (GET /Patient/{id}/_history/{vid})", vread)
    checks.run("fhirpy: conditional update (SearchSet.update: PUT /Patient?identifier=)", conditional_update)
    return state


def fhirclient_checks(checks, base, token, state):
    server = fhirclient_server.FHIRServer(None, base_uri=base)
    # fhirclient signs requests only through its SMART auth; a bearer token obtained elsewhere
    # goes on the session it makes every request with.
    server.session.headers["Authorization"] = f"Bearer {token}"

    def capability():
        server.get_capability()  # parses the CapabilityStatement with fhirclient's models
        cs = server.capabilityStatement
        expect(isinstance(cs, CapabilityStatement), f"{type(cs)}")
        expect(cs.fhirVersion.startswith("4.0"), f"fhirVersion {cs.fhirVersion}")
        types = [r.type for r in cs.rest[0].resource]
        expect("Patient" in types, f"resources {types}")
        expect(not server.auth.can_sign_headers(), "fhirclient would add a second Authorization header")
        return f"FHIR {cs.fhirVersion}, resources {types}"

    def read():
        patient = FCPatient.read("patient-jane-smith", server)
        expect(patient.id == "patient-jane-smith", f"id {patient.id}")
        expect(patient.name[0].family == "Smith" and patient.name[0].given == ["Jane"],
               f"name {patient.name[0].family} {patient.name[0].given}")
        expect(patient.birthDate.isostring == "1980-05-01", f"birthDate {patient.birthDate.isostring}")
        expect(patient.gender == "female", f"gender {patient.gender}")
        expect([i.value for i in patient.identifier if i.system == NHS] == ["9990000018"],
               f"identifier {[i.as_json() for i in patient.identifier]}")
        expect(patient.meta.versionId == "1", f"meta.versionId {patient.meta.versionId}")
        expect(patient.generalPractitioner[0].reference == "Organization/practice-a81001",
               f"generalPractitioner {patient.generalPractitioner[0].as_json()}")
        return f"{patient.name[0].given[0]} {patient.name[0].family}, {patient.birthDate.isostring}, version {patient.meta.versionId}"

    def search():
        smiths = state.get("smiths")
        expect(smiths, "the fhirpy paging check did not produce the Smiths to compare with")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # perform_resources is deprecated in 4.x
            found = FCPatient.where(struct={"family": "smith"}).perform_resources(server)
        ids = sorted(p.id for p in found)
        expect(ids == smiths, f"family=smith gave {ids}, fhirpy saw {smiths}")
        expect(all(p.name[0].family == "Smith" for p in found), f"{[p.name[0].family for p in found]}")
        expect(state.get("id") in ids, f"the Patient created with fhirpy ({state.get('id')}) is not found")
        return f"{len(ids)} patients: {ids}"

    def paging():
        smiths = state.get("smiths")
        expect(smiths, "the fhirpy paging check did not produce the Smiths to compare with")
        start = len(EXCHANGES)
        found = list(FCPatient.where(struct={"family": "smith", "_count": "1"}).perform_resources_iter(server))
        pages = len(EXCHANGES) - start
        ids = [p.id for p in found]
        expect(sorted(ids) == smiths and len(set(ids)) == len(ids), f"_count=1 paging gave {ids}, expected {smiths}")
        expect(pages == len(smiths), f"{pages} page requests for {len(smiths)} results at _count=1")
        return f"{len(ids)} patients over {pages} pages"

    def no_token():
        anonymous = fhirclient_server.FHIRServer(None, base_uri=base)
        try:
            FCPatient.read("patient-jane-smith", anonymous)
            raise AssertionError(f"read without a token was answered {last()['status']}")
        except fhirclient_server.FHIRUnauthorizedException as error:
            expect(error.response.json()["resourceType"] == "OperationOutcome", "401 without an OperationOutcome")
            expect(error.response.headers.get("WWW-Authenticate", "").startswith("Bearer"),
                   f"WWW-Authenticate {error.response.headers.get('WWW-Authenticate')!r}")
        return "401 with WWW-Authenticate: Bearer and an OperationOutcome"

    checks.run("fhirclient: CapabilityStatement (server.get_capability)", capability)
    checks.run("fhirclient: read Patient/patient-jane-smith", read)
    checks.run("fhirclient: Patient.where(family=smith).perform_resources", search)
    checks.run("fhirclient: paging with _count=1 (perform_resources_iter)", paging)
    checks.run("fhirclient: read without a token", no_token)


# ---------------------------------------------------------------------------------------------

class OutOfTime(BaseException):
    """Not an Exception: a check cannot swallow it."""


def on_alarm(signum, frame):
    raise OutOfTime(f"gave up after {TIME_LIMIT} s")


def main():
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_LIMIT)
    checks = Checks()
    try:
        with DevGateway() as gateway:
            token = gateway.token("staff-emis")
            state = fhirpy_checks(checks, gateway.base, token)
            fhirclient_checks(checks, gateway.base, token, state)
            print(f"{checks.passed} passed, {checks.failed} failed")
            return 1 if checks.failed else 0
    except GatewayDidNotStart as error:
        print(f"FAIL  {error}")
        print("0 passed, 1 failed")
        return 1
    except OutOfTime as error:
        print(f"FAIL  {error}")
        print(f"{checks.passed} passed, {checks.failed + 1} failed")
        return 1
    finally:
        signal.alarm(0)

if __name__ == "__main__":
    sys.exit(main())
