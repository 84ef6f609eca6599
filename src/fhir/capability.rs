use serde_json::{Value, json};

use super::FHIR_JSON;

/// The CapabilityStatement lists only what the gateway really serves.
pub fn capability_statement(base_url: &str, now: &str) -> Value {
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now,
        "publisher": "GP Online Services Gateway",
        "kind": "instance",
        "software": {"name": "gp-online-gateway", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "GP online services gateway", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "application/json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": false,
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "OAuth"
                }]}],
                "description": "Bearer tokens (JWT) from configured OpenID Connect issuers: staff (CIS2-like), system clients and NHS login-like patient issuers."
            },
            "resource": [
                {
                    "type": "Patient",
                    "versioning": "versioned",
                    "readHistory": false,
                    "updateCreate": false,
                    "conditionalCreate": true,
                    "conditionalUpdate": false,
                    "conditionalDelete": "not-supported",
                    "interaction": [
                        {"code": "read"}, {"code": "vread"}, {"code": "update"}, {"code": "create"},
                        {"code": "search-type"}
                    ],
                    "searchParam": [
                        {"name": "identifier", "type": "token", "documentation": "system|value of the NHS, CHI or H&C number"},
                        {"name": "family", "type": "string", "documentation": "family name, starts-with, case-insensitive"},
                        {"name": "birthdate", "type": "date", "documentation": "exact date (YYYY-MM-DD)"},
                        {"name": "organization", "type": "reference", "documentation": "the registered practice: Organization/{id}, {id} or an ODS code"},
                        {"name": "_count", "type": "number", "documentation": "page size, 1 to 100 (default 20)"}
                    ]
                },
                {
                    "type": "Organization",
                    "versioning": "versioned",
                    "readHistory": false,
                    "updateCreate": false,
                    "interaction": [{"code": "read"}, {"code": "update"}, {"code": "search-type"}],
                    "searchParam": [
                        {"name": "identifier", "type": "token", "documentation": "ODS code (system|value or value)"},
                        {"name": "_count", "type": "number"}
                    ]
                }
            ]
        }]
    })
}
