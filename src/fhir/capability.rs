use serde_json::{Value, json};

use super::FHIR_JSON;

/// One documented route, as the HTTP layer registers it.
#[derive(Debug, Clone)]
pub struct Route {
    pub path: String,
    pub method: String,
    /// Query parameters: name and description.
    pub params: Vec<(String, String)>,
    pub summary: String,
}

fn resource_of(path: &str) -> Option<&str> {
    let first = path.trim_start_matches('/').split('/').next()?;
    first.chars().next().filter(char::is_ascii_uppercase).map(|_| first)
}

fn param_type(name: &str) -> &'static str {
    match name {
        "birthdate" | "date" | "start" | "end" => "date",
        "_count" | "_offset" => "number",
        "organization" | "patient" | "general-practitioner" => "reference",
        "family" | "given" | "name" | "family:exact" => "string",
        n if n.starts_with('_') => "special",
        _ => "token",
    }
}

/// The CapabilityStatement of exactly the routes registered: every resource type with its
/// interactions and search parameters, and every operation (`$name`) at the level it is served.
pub fn capability_statement(base_url: &str, date: &str, routes: &[Route]) -> Value {
    let mut types: Vec<String> = vec![];
    for r in routes {
        if let Some(t) = resource_of(&r.path)
            && !types.iter().any(|x| x == t)
        {
            types.push(t.to_owned());
        }
    }
    types.sort();
    let operation = |r: &Route| -> Option<Value> {
        // The operation itself, not the URLs it hands out (a bulk export's status and files).
        let name = r.path.rsplit('/').next()?.strip_prefix('$')?;
        Some(json!({
            "name": name,
            "definition": format!("{base_url}/OperationDefinition/{name}"),
            "documentation": format!("{} {}: {}", r.method.to_uppercase(), r.path, r.summary),
        }))
    };
    let resources: Vec<Value> = types
        .iter()
        .map(|t| {
            let own: Vec<&Route> = routes
                .iter()
                .filter(|r| resource_of(&r.path) == Some(t.as_str()))
                .collect();
            let base = format!("/{t}");
            let instance = format!("/{t}/{{id}}");
            let mut interaction = vec![];
            let has = |path: &str, method: &str| own.iter().any(|r| r.path == path && r.method == method);
            if has(&instance, "get") {
                interaction.push(json!({"code": "read"}));
            }
            if has(&format!("{instance}/_history/{{vid}}"), "get") {
                interaction.push(json!({"code": "vread"}));
            }
            if has(&format!("{instance}/_history"), "get") {
                interaction.push(json!({"code": "history-instance"}));
            }
            if has(&instance, "put") {
                interaction
                    .push(json!({"code": "update", "documentation": "If-Match is optional; a stale one is 412"}));
            }
            if has(&instance, "patch") {
                interaction.push(json!({"code": "patch"}));
            }
            if has(&base, "post") {
                interaction.push(json!({"code": "create"}));
            }
            if has(&base, "get") {
                interaction.push(json!({"code": "search-type"}));
            }
            let search: Vec<Value> = own
                .iter()
                .filter(|r| r.path == base && r.method == "get")
                .flat_map(|r| r.params.iter())
                .map(|(name, doc)| json!({"name": name, "type": param_type(name), "documentation": doc}))
                .collect();
            let operations: Vec<Value> = own.iter().filter_map(|r| operation(r)).collect();
            let mut resource = json!({
                "type": t,
                "versioning": "versioned",
                "readHistory": has(&format!("{instance}/_history/{{vid}}"), "get"),
                "updateCreate": false,
                "interaction": interaction,
            });
            if t == "Patient" {
                resource["conditionalRead"] = json!("not-match");
                resource["conditionalCreate"] = json!(true);
                resource["conditionalUpdate"] = json!(has(&base, "put"));
                resource["conditionalDelete"] = json!("not-supported");
            }
            if !search.is_empty() {
                resource["searchParam"] = Value::Array(search);
            }
            if !operations.is_empty() {
                resource["operation"] = Value::Array(operations);
            }
            resource
        })
        .collect();
    let system_operations: Vec<Value> = routes
        .iter()
        .filter(|r| r.path.starts_with("/$"))
        .filter_map(operation)
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
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
            "resource": resources,
            "operation": system_operations,
        }]
    })
}
