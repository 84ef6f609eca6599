//! Reading the API's FHIR answers for display.

use serde_json::Value;

/// The parameter (or part) `name` of a `Parameters` resource or a parameter with parts.
pub fn param<'a>(v: &'a Value, name: &str) -> &'a Value {
    let list = v.get("parameter").or_else(|| v.get("part")).and_then(Value::as_array);
    list.and_then(|l| l.iter().find(|p| p["name"] == name))
        .unwrap_or(&Value::Null)
}

/// Every parameter (or part) called `name`.
pub fn params<'a>(v: &'a Value, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    v.get("parameter")
        .or_else(|| v.get("part"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |p| p["name"] == name)
}

/// A parameter's value, whatever its type, as text.
pub fn value(p: &Value) -> String {
    for key in [
        "valueString",
        "valueCode",
        "valueDate",
        "valueDateTime",
        "valueInteger",
        "valueBoolean",
    ] {
        match p.get(key) {
            Some(Value::String(s)) => return s.clone(),
            Some(Value::Bool(b)) => return if *b { "yes" } else { "no" }.into(),
            Some(Value::Number(n)) => return n.to_string(),
            _ => {}
        }
    }
    String::new()
}

/// A Task's input or output called `name`.
pub fn task_value<'a>(task: &'a Value, name: &str) -> &'a Value {
    task["input"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(task["output"].as_array().into_iter().flatten())
        .find(|i| i["type"]["text"] == name)
        .unwrap_or(&Value::Null)
}

/// A Patient's name as people write it: given names then family name.
pub fn patient_name(p: &Value) -> String {
    let name = &p["name"][0];
    let given: Vec<&str> = name["given"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let family = name["family"].as_str().unwrap_or_default();
    let whole = format!("{} {family}", given.join(" "));
    let whole = whole.trim();
    if whole.is_empty() {
        "(no name)".into()
    } else {
        whole.into()
    }
}

/// The NHS number among a resource's identifiers.
pub fn nhs_number(p: &Value) -> String {
    p["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["system"] == crate::fhir::NHS_NUMBER_SYSTEM)
        .and_then(|i| i["value"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// An NHS number spaced 3-3-4, as it is printed.
pub fn spaced(nhs: &str) -> String {
    match (nhs.get(..3), nhs.get(3..6), nhs.get(6..)) {
        (Some(a), Some(b), Some(c)) if nhs.len() == 10 => format!("{a} {b} {c}"),
        _ => nhs.to_owned(),
    }
}

/// The resources of a searchset Bundle.
pub fn entries(bundle: &Value) -> Vec<&Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
        .filter(|r| r.is_object())
        .collect()
}

/// A status as a coloured tag (the text says it; the colour only repeats it).
pub fn tag(status: &str) -> String {
    let colour = match status {
        "active" | "completed" | "approved" | "issued" => "green",
        "failed" | "rejected" | "disabled" | "entered-in-error" | "cancelled" => "red",
        "proposed" | "requested" | "pending" | "queued" | "in-progress" => "blue",
        _ => "grey",
    };
    format!(
        r#"<strong class="tag tag--{colour}">{}</strong>"#,
        super::html::esc(status)
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parameters_and_names_read_as_people_expect() {
        let p = json!({"parameter": [{"name": "a", "part": [{"name": "b", "valueBoolean": true}]}]});
        assert_eq!(value(param(param(&p, "a"), "b")), "yes");
        assert!(param(&p, "missing").is_null());
        let patient = json!({"name": [{"family": "Smith", "given": ["Jane", "Ann"]}],
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}]});
        assert_eq!(patient_name(&patient), "Jane Ann Smith");
        assert_eq!(spaced(&nhs_number(&patient)), "999 000 0018");
        assert!(tag("<x>").contains("&lt;x&gt;"));
    }
}
