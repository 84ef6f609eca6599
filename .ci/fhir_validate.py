"""Validates the gateway's FHIR output with an independent implementation (fhir.resources).

Starts the debug binary's dev profile (devgateway.py) on a free loopback port with a throwaway data directory,
fetches one of each resource shape the gateway returns, and parses each with the R4B models.
Exits non-zero on any failure. Stops the gateway on the way out.
"""
import json
import sys
import time
import urllib.request

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient

from devgateway import DevGateway



def fetch(url, token=None, method="GET", body=None):
    request = urllib.request.Request(url, method=method, data=body)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/fhir+json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def main():
    with DevGateway() as gateway:
        base = gateway.base
        token = gateway.token("staff-emis")
        created = fetch(f"{base}/Patient", token, "POST", json.dumps({
            "resourceType": "Patient",
            "identifier": [{"system": "https://fhir.nhs.scot/Id/chi-number", "value": "1403775419"}],
            "name": [{"family": "Mackenzie", "given": ["Isla"]}],
            "birthDate": "1977-03-14",
            "generalPractitioner": [{"reference": "Organization/practice-a81001"}],
        }).encode())
        checks = [
            ("CapabilityStatement", CapabilityStatement, fetch(f"{base}/metadata")),
            ("Patient (read)", Patient, fetch(f"{base}/Patient/patient-jane-smith", token)),
            ("Patient (created, CHI)", Patient, created),
            ("Patient (vread)", Patient, fetch(f"{base}/Patient/patient-jane-smith/_history/1", token)),
            ("Bundle (search)", Bundle, fetch(f"{base}/Patient?family=smith&_count=1", token)),
            ("Bundle (history)", Bundle, fetch(f"{base}/Patient/patient-jane-smith/_history", token)),
            ("Organization", Organization, fetch(f"{base}/Organization/practice-b82005", token)),
            ("Bundle (organizations)", Bundle, fetch(f"{base}/Organization", token)),
            ("OperationOutcome (404)", OperationOutcome, fetch(f"{base}/Patient/unknown", token)),
            ("OperationOutcome (401)", OperationOutcome, fetch(f"{base}/Patient/unknown")),
        ]
        # The GP record, as the patient reads it once her seeded account is active.
        patient = gateway.token("patient-p9")
        everything = json.dumps({"resourceType": "Parameters", "parameter": [
            {"name": "patientNHSNumber", "valueIdentifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}},
            {"name": "includeAllergies", "part": [{"name": "includeResolvedAllergies", "valueBoolean": True}]},
            {"name": "includeMedication"}, {"name": "includeConsultations"}, {"name": "includeProblems"},
            {"name": "includeImmunisations"}, {"name": "includeInvestigations"}, {"name": "includeReferrals"},
            {"name": "includeDocuments"},
        ]}).encode()
        deadline = time.monotonic() + 20
        record = fetch(f"{base}/Patient/$gpc.getstructuredrecord", patient, "POST", everything)
        while record.get("resourceType") != "Bundle" and time.monotonic() < deadline:
            time.sleep(0.2)
            record = fetch(f"{base}/Patient/$gpc.getstructuredrecord", patient, "POST", everything)
        checks.append(("Bundle (structured record)", Bundle, record))
        for kind in ["AllergyIntolerance", "MedicationStatement", "MedicationRequest", "Condition", "Immunization",
                     "Observation", "Encounter", "ServiceRequest", "DocumentReference"]:
            checks.append((f"Bundle ({kind} search)", Bundle, fetch(f"{base}/{kind}?patient=patient-jane-smith", patient)))
        documents = fetch(f"{base}/DocumentReference?patient=patient-jane-smith", patient)
        for entry in documents.get("entry", []):
            url = entry["resource"]["content"][0]["attachment"]["url"]
            checks.append(("Binary", Binary, fetch(f"{base}/{url}", patient)))

        # Appointments and repeat prescriptions: searches, a booking and a request.
        today = time.strftime("%Y-%m-%d")
        later = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 10 * 86400))
        slots = fetch(f"{base}/Slot?start=ge{today}&start=le{later}&_count=5", patient)
        checks.append(("Bundle (Slot search)", Bundle, slots))
        if slots.get("entry"):
            slot = slots["entry"][0]["resource"]["id"]
            booking = json.dumps({"resourceType": "Appointment", "status": "booked",
                                  "slot": [{"reference": f"Slot/{slot}"}],
                                  "participant": [{"status": "accepted"}]}).encode()
            checks.append(("Appointment (booked)", Appointment, fetch(f"{base}/Appointment", patient, "POST", booking)))
        checks.append(("Bundle (Appointment search)", Bundle, fetch(f"{base}/Appointment", patient)))
        checks.append(("Bundle (repeats)", Bundle, fetch(f"{base}/MedicationRequest?intent=plan", patient)))
        order = json.dumps({"resourceType": "MedicationRequest", "intent": "order", "status": "active",
                            "basedOn": [{"reference": "MedicationRequest/rpt-jane-salbutamol"}],
                            "note": [{"text": "Running low"}]}).encode()
        checks.append(("Bundle (repeat request)", Bundle, fetch(f"{base}/MedicationRequest", patient, "POST", order)))
        checks.append(("Bundle (requests)", Bundle, fetch(f"{base}/MedicationRequest?intent=order", patient)))

        failed = 0
        for name, model, resource in checks:
            try:
                model.model_validate(resource)
                print(f"valid   {name}")
            except Exception as error:  # noqa: BLE001 - report every failure, then exit non-zero
                failed += 1
                print(f"INVALID {name}: {error}")
        print(f"{len(checks) - failed} passed, {failed} failed")
        return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
