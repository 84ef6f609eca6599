//! The Patient lifecycle: create, read, update with If-Match, conditional create, search.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn create_read_update_lifecycle() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let body = new_patient(FREE_NHS_NUMBERS[0], "Taylor", "A81001");
    let (status, headers, created) = app.post_fhir("/Patient", &token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["meta"]["versionId"], "1");
    assert!(created["meta"]["lastUpdated"].as_str().unwrap().ends_with('Z'));
    assert_eq!(headers["etag"], "W/\"1\"");
    assert_eq!(
        headers["location"].to_str().unwrap(),
        app.url(&format!("/Patient/{id}/_history/1"))
    );
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json")
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(
        created["generalPractitioner"][0]["reference"],
        "Organization/practice-a81001"
    );

    let (status, headers, read) = app.get(&format!("/Patient/{id}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["etag"], "W/\"1\"");
    assert_eq!(read, created);

    // Update without If-Match: 412.
    let mut changed = read.clone();
    changed["name"][0]["family"] = json!("Taylor-Hughes");
    let put = |etag: Option<&str>, body: &Value| {
        let mut rb = app
            .request(Method::PUT, &format!("/Patient/{id}"), Some(&token))
            .header("content-type", "application/fhir+json")
            .body(body.to_string());
        if let Some(e) = etag {
            rb = rb.header("if-match", e);
        }
        send(rb)
    };
    let (status, headers, updated) = put(Some("W/\"1\""), &changed).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(headers["etag"], "W/\"2\"");
    assert_eq!(updated["meta"]["versionId"], "2");
    assert_eq!(updated["name"][0]["family"], "Taylor-Hughes");

    // The same stale ETag again: 412, as FHIR says.
    let (status, _, outcome) = put(Some("W/\"1\""), &changed).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(outcome_code(&outcome), "PRECONDITION_FAILED");
    // `*` matches whatever version is current; no If-Match replaces the current version.
    let (status, headers, _) = put(Some("*"), &changed).await;
    assert_eq!((status, headers["etag"].to_str().unwrap()), (StatusCode::OK, "W/\"3\""));
    let (status, headers, updated) = put(None, &changed).await;
    assert_eq!((status, headers["etag"].to_str().unwrap()), (StatusCode::OK, "W/\"4\""));

    // A malformed If-Match is a 400, an id mismatch is a 400.
    let (status, _, _) = put(Some("yesterday"), &changed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut wrong_id = updated.clone();
    wrong_id["id"] = json!("another-id");
    let (status, _, _) = put(Some("W/\"4\""), &wrong_id).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, _, read) = app.get(&format!("/Patient/{id}"), &token).await;
    assert_eq!(read["meta"]["versionId"], "4");
    let (status, _, current) = app.get(&format!("/Patient/{id}/_history/4"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(current, read);
    // Older versions are kept: version 1 is the record as first created.
    let (status, _, first) = app.get(&format!("/Patient/{id}/_history/1"), &token).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["meta"]["versionId"], "1");

    let (status, _, outcome) = app.get("/Patient/does-not-exist", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(outcome_code(&outcome), "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn a_read_naming_the_current_etag_is_not_modified_and_still_audited() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let path = "/Patient/patient-jane-smith";
    let (status, headers, _) = app.get(path, &token).await;
    assert_eq!(status, StatusCode::OK);
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let version = etag.trim_start_matches("W/").trim_matches('"').to_owned();
    let conditional = |tag: String| {
        let request_id = uuid::Uuid::new_v4().to_string();
        let rb = app
            .request(Method::GET, path, Some(&token))
            .header("if-none-match", tag)
            .header("x-request-id", &request_id);
        async move { (rb.send().await.unwrap(), request_id) }
    };

    for tag in [
        etag.clone(),
        format!("\"{version}\""),
        format!("W/\"999\", {etag}"),
        "*".to_owned(),
    ] {
        let (r, request_id) = conditional(tag.clone()).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "If-None-Match: {tag}");
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
        assert!(r.headers().contains_key("last-modified"));
        assert!(r.bytes().await.unwrap().is_empty());
        // Decided and audited as a successful read, like the 200 it stands for.
        let rows = audit_rows(
            &app,
            format!("request_id = '{request_id}' AND action = 'read-patient' AND outcome = 'success'"),
        )
        .await;
        assert_eq!(rows, 1, "If-None-Match: {tag}");
    }

    // Another version, or something that is not an ETag of ours: the record itself.
    for tag in [
        "W/\"0\"".to_owned(),
        "\"not-a-version\"".to_owned(),
        format!("W/{version}"),
    ] {
        let (r, _) = conditional(tag.clone()).await;
        assert_eq!(r.status(), StatusCode::OK, "If-None-Match: {tag}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["id"], "patient-jane-smith");
    }

    // The decision comes first: naming the current ETag tells a caller who may not read the
    // record nothing.
    let (status, _, _) = send(
        app.request(Method::GET, path, Some(&app.token("staff-tpp")))
            .header("if-none-match", etag),
    )
    .await;
    assert!(
        status.is_client_error() && status != StatusCode::NOT_MODIFIED,
        "{status}"
    );
}

#[tokio::test]
async fn concurrent_updates_with_the_same_etag_let_exactly_one_win() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let (_, _, current) = app.get("/Patient/patient-amir-khan", &token).await;
    let mut attempts = Vec::new();
    for i in 0..6 {
        let mut body = current.clone();
        body["name"][0]["given"] = json!([format!("Amir{i}")]);
        attempts.push(send(
            app.request(Method::PUT, "/Patient/patient-amir-khan", Some(&token))
                .header("content-type", "application/fhir+json")
                .header("if-match", "W/\"1\"")
                .body(body.to_string()),
        ));
    }
    let results = futures_util::future::join_all(attempts).await;
    let ok = results.iter().filter(|(s, _, _)| *s == StatusCode::OK).count();
    // A loser that read the record after the winner saved it gets 412 (stale If-Match); one
    // that raced the winner's write gets 409.
    let conflicts = results
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::CONFLICT || *s == StatusCode::PRECONDITION_FAILED)
        .count();
    assert_eq!((ok, conflicts), (1, 5));
    let (_, _, after) = app.get("/Patient/patient-amir-khan", &token).await;
    assert_eq!(after["meta"]["versionId"], "2");
}

#[tokio::test]
async fn invalid_resources_are_refused_with_the_offending_element() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (
            new_patient("9990000019", "Bad", "A81001"),
            StatusCode::BAD_REQUEST,
            "INVALID_IDENTIFIER",
            "Patient.identifier[0].value",
        ),
        (
            new_patient("12345", "Bad", "A81001"),
            StatusCode::BAD_REQUEST,
            "INVALID_IDENTIFIER",
            "Patient.identifier[0].value",
        ),
        (
            with(
                new_patient(FREE_NHS_NUMBERS[1], "Bad", "A81001"),
                "/birthDate",
                json!("2999-01-01"),
            ),
            StatusCode::BAD_REQUEST,
            "INVALID_RESOURCE",
            "Patient.birthDate",
        ),
        (
            with(
                new_patient(FREE_NHS_NUMBERS[1], "Bad", "A81001"),
                "/birthDate",
                json!("01/02/1990"),
            ),
            StatusCode::BAD_REQUEST,
            "INVALID_RESOURCE",
            "Patient.birthDate",
        ),
        (
            with(new_patient(FREE_NHS_NUMBERS[1], "Bad", "A81001"), "/gender", json!("m")),
            StatusCode::BAD_REQUEST,
            "INVALID_RESOURCE",
            "Patient.gender",
        ),
        (
            with(
                new_patient(FREE_NHS_NUMBERS[1], "", "A81001"),
                "/name/0/family",
                json!(""),
            ),
            StatusCode::BAD_REQUEST,
            "INVALID_RESOURCE",
            "Patient.name.family",
        ),
        (
            with(
                new_patient(FREE_NHS_NUMBERS[1], "Bad", "A81001"),
                "/telecom/0/value",
                json!("not-an-email"),
            ),
            StatusCode::BAD_REQUEST,
            "INVALID_RESOURCE",
            "Patient.telecom",
        ),
        (
            with(
                new_patient(FREE_NHS_NUMBERS[1], "Bad", "A81001"),
                "/resourceType",
                json!("Practitioner"),
            ),
            StatusCode::BAD_REQUEST,
            "INVALID_RESOURCE",
            "Patient.resourceType",
        ),
        (
            new_patient(FREE_NHS_NUMBERS[1], "Bad", "Z99999"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNKNOWN_PRACTICE",
            "Patient.generalPractitioner[0]",
        ),
    ];
    for (body, status, code, expression) in cases {
        let (got, _, outcome) = app.post_fhir("/Patient", &token, &body).await;
        assert_eq!(got, status, "{body} -> {outcome}");
        assert_eq!(outcome_code(&outcome), code, "{outcome}");
        assert_eq!(outcome["issue"][0]["expression"][0], expression, "{outcome}");
    }
    // Unknown elements are refused rather than silently dropped.
    let mut extra = new_patient(FREE_NHS_NUMBERS[1], "Bad", "A81001");
    extra["maritalStatus"] = json!({"text": "married"});
    let (status, _, outcome) = app.post_fhir("/Patient", &token, &extra).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        outcome["issue"][0]["details"]["text"]
            .as_str()
            .unwrap()
            .contains("maritalStatus")
    );
    // Not JSON at all.
    let (status, _, outcome) = send(
        app.request(Method::POST, "/Patient", Some(&token))
            .header("content-type", "application/fhir+json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(outcome_code(&outcome), "INVALID_RESOURCE");
    // Nothing was stored.
    let (_, _, bundle) = app.get("/Patient?family=bad", &token).await;
    assert_eq!(bundle["total"], 0);
}

fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    *v.pointer_mut(pointer).expect("pointer exists") = value;
    v
}

#[tokio::test]
async fn content_types_and_body_size_are_enforced() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let body = new_patient(FREE_NHS_NUMBERS[2], "Plain", "A81001");
    let (status, _, created) = send(
        app.request(Method::POST, "/Patient", Some(&token))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "plain application/json is accepted: {created}"
    );

    let (status, _, outcome) = send(
        app.request(Method::POST, "/Patient", Some(&token))
            .header("content-type", "text/plain")
            .body(body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(outcome_code(&outcome), "UNSUPPORTED_MEDIA_TYPE");

    let mut huge = new_patient(FREE_NHS_NUMBERS[3], "Huge", "A81001");
    huge["name"][0]["given"] = json!(vec!["x".repeat(1000); 100]);
    let (status, _, outcome) = app.post_fhir("/Patient", &token, &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(outcome_code(&outcome), "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn duplicates_and_conditional_create() {
    let app = TestApp::spawn().await;
    let emis = app.token("staff-emis");
    // A seeded patient's NHS number cannot be registered again.
    let (status, _, outcome) = app
        .post_fhir("/Patient", &emis, &new_patient("9990000018", "Smith", "A81001"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(outcome_code(&outcome), "DUPLICATE_RESOURCE");

    let conditional = |token: &str, nhs: &str, body: &Value| {
        send(
            app.request(Method::POST, "/Patient", Some(token))
                .header("content-type", "application/fhir+json")
                .header(
                    "if-none-exist",
                    format!("identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"),
                )
                .body(body.to_string()),
        )
    };
    let body = new_patient(FREE_NHS_NUMBERS[4], "Conditional", "A81001");
    let (status, _, first) = conditional(&emis, FREE_NHS_NUMBERS[4], &body).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, second) = conditional(&emis, FREE_NHS_NUMBERS[4], &body).await;
    assert_eq!(status, StatusCode::OK, "a match is returned, not created: {second}");
    assert_eq!(second["id"], first["id"]);
    assert_eq!(headers["etag"], "W/\"1\"");

    // Seen from another practice, the match is a conflict and its content is not revealed.
    let tpp = app.token("staff-tpp");
    let (status, _, outcome) = conditional(
        &tpp,
        FREE_NHS_NUMBERS[4],
        &new_patient(FREE_NHS_NUMBERS[4], "Conditional", "B82005"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(outcome_code(&outcome), "DUPLICATE_RESOURCE");

    // A condition matching several records is refused.
    let (status, _, outcome) = send(
        app.request(Method::POST, "/Patient", Some(&emis))
            .header("content-type", "application/fhir+json")
            .header("if-none-exist", "family=smith")
            .body(new_patient(FREE_NHS_NUMBERS[5], "Smith", "A81001").to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(outcome_code(&outcome), "MULTIPLE_MATCHES");
}

#[tokio::test]
async fn search_by_each_parameter_with_paging() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    for (i, nhs) in FREE_NHS_NUMBERS.iter().enumerate().take(5) {
        let mut body = new_patient(nhs, "Pager", "A81001");
        body["name"][0]["given"] = json!([format!("P{i}")]);
        let (status, _, _) = app.post_fhir("/Patient", &token, &body).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _, page1) = app.get("/Patient?family=PAG&_count=2", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page1["resourceType"], "Bundle");
    assert_eq!(page1["type"], "searchset");
    assert_eq!(page1["total"], 5);
    assert_eq!(page1["entry"].as_array().unwrap().len(), 2);
    let next = page1["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut seen: Vec<String> = page1["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    let mut next_url = Some(next);
    while let Some(url) = next_url {
        let (status, _, _, page) = {
            let r = app.client.get(&url).bearer_auth(&token).send().await.unwrap();
            let s = r.status();
            let h = r.headers().clone();
            (s, h, (), r.json::<Value>().await.unwrap())
        };
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["total"], 5, "every page, the last one too, gives the same total");
        seen.extend(
            page["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"]["id"].as_str().unwrap().to_owned()),
        );
        next_url = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_owned());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "paging visits every match once");
    for (query, entries) in [
        ("_count=5", 5),
        ("_count=6", 5),
        ("_count=2&_offset=4", 1),
        ("_count=2&_offset=10", 0),
    ] {
        let (status, _, page) = app.get(&format!("/Patient?family=PAG&{query}"), &token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["total"], 5, "{query}");
        assert_eq!(page["entry"].as_array().map_or(0, Vec::len), entries, "{query}");
    }

    let (_, _, by_id) = app
        .get(
            "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000034",
            &token,
        )
        .await;
    assert_eq!(by_id["total"], 1);
    assert_eq!(by_id["entry"][0]["resource"]["id"], "patient-amir-khan");
    assert_eq!(by_id["entry"][0]["fullUrl"], app.url("/Patient/patient-amir-khan"));
    // The identifier alone is read with other requests' reads; its paging is still the search's.
    let nhs = "identifier=https://fhir.nhs.uk/Id/nhs-number|9990000034";
    for (query, total, entries) in [
        ("_count=0", 1, 0),
        ("_offset=1", 1, 0),
        ("_count=1", 1, 1),
        ("family=Khan", 1, 1),
        ("family=Smith", 0, 0),
    ] {
        let (status, _, page) = app.get(&format!("/Patient?{nhs}&{query}"), &token).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(page["total"], total, "{query}");
        assert_eq!(page["entry"].as_array().map_or(0, Vec::len), entries, "{query}");
    }
    // A record at another practice is not found from this one.
    let (_, _, elsewhere) = app
        .get(
            "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000050",
            &token,
        )
        .await;
    assert_eq!(elsewhere["total"], 0, "{elsewhere}");
    assert!(elsewhere.get("entry").is_none());
    let (_, _, by_value) = app.get("/Patient?identifier=9990000034", &token).await;
    assert_eq!(by_value["total"], 1);
    let (_, _, by_date) = app.get("/Patient?birthdate=1980-05-01", &token).await;
    assert_eq!(by_date["total"], 1);
    let (_, _, combined) = app.get("/Patient?family=smith&birthdate=2014-09-12", &token).await;
    assert_eq!(combined["total"], 1);
    let (_, _, by_org) = app.get("/Patient?organization=A81001&_count=0", &token).await;
    assert_eq!(by_org["total"], 13, "8 seeded + 5 created");
    assert!(by_org.get("entry").is_none());
    let (_, _, by_ref) = app
        .get("/Patient?organization=Organization/practice-a81001&family=khan", &token)
        .await;
    assert_eq!(by_ref["total"], 1);
    // LIKE wildcards in a search term are literal.
    let (_, _, wildcard) = app.get("/Patient?family=%25", &token).await;
    assert_eq!(wildcard["total"], 0);

    for bad in [
        "/Patient?birthdate=yesterday",
        "/Patient?_count=-1",
        "/Patient?identifier=http://x|1",
        "/Patient?family=a&family=b",
    ] {
        let (status, _, outcome) = app.get(bad, &token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(outcome_code(&outcome), "INVALID_SEARCH_PARAMETER", "{bad}");
    }
}

#[tokio::test]
async fn chi_and_hc_numbers_are_patient_identifiers_too() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-tpp");
    let mut chi = new_patient("1403775419", "Mackenzie", "B82005");
    chi["identifier"][0]["system"] = json!("https://fhir.nhs.scot/Id/chi-number");
    let (status, _, created) = app.post_fhir("/Patient", &token, &chi).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, _, found) = app
        .get(
            "/Patient?identifier=https://fhir.nhs.scot/Id/chi-number|1403775419",
            &token,
        )
        .await;
    assert_eq!(found["total"], 1);

    let mut hc = new_patient("3200000015", "O'Neill", "B82005");
    hc["identifier"][0]["system"] = json!("https://fhir.hscni.net/Id/hcn");
    let (status, _, _) = app.post_fhir("/Patient", &token, &hc).await;
    assert_eq!(status, StatusCode::CREATED);
    hc["identifier"][0]["value"] = json!("9434765919");
    let (status, _, outcome) = app.post_fhir("/Patient", &token, &hc).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an NHS number is not an H&C number");
    assert_eq!(outcome_code(&outcome), "INVALID_IDENTIFIER");
}

#[tokio::test]
async fn search_parameters_fhir_clients_use() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let total = |b: &Value| b["total"].as_i64().unwrap();
    let ids = |b: &Value| -> Vec<String> {
        b["entry"].as_array().map_or(vec![], |e| {
            e.iter()
                .map(|x| x["resource"]["id"].as_str().unwrap().to_owned())
                .collect()
        })
    };
    let (_, _, b) = app
        .get("/Patient?_id=patient-jane-smith,patient-amir-khan", &token)
        .await;
    assert_eq!(total(&b), 2, "{b}");
    let (_, _, b) = app.get("/Patient?given=jan", &token).await;
    assert_eq!(ids(&b), ["patient-jane-smith"]);
    let (_, _, b) = app.get("/Patient?name=kha", &token).await;
    assert_eq!(ids(&b), ["patient-amir-khan"]);
    let (_, _, b) = app.get("/Patient?family:exact=Smith", &token).await;
    assert_eq!(total(&b), 2);
    let (_, _, b) = app.get("/Patient?family:exact=smith", &token).await;
    assert_eq!(total(&b), 0, "exact is case-sensitive");
    let (_, _, b) = app
        .get("/Patient?birthdate=ge1980-01-01&birthdate=lt1990-01-01", &token)
        .await;
    assert!(
        ids(&b).contains(&"patient-jane-smith".to_owned()) && ids(&b).contains(&"patient-lucy-evans".to_owned()),
        "{b}"
    );
    assert!(!ids(&b).contains(&"patient-oliver-smith".to_owned()));
    let (_, _, b) = app.get("/Patient?birthdate=1956", &token).await;
    assert_eq!(ids(&b), ["patient-amir-khan"]);
    let (_, _, b) = app.get("/Patient?_sort=-birthdate&_count=2", &token).await;
    assert_eq!(ids(&b)[0], "patient-oliver-smith", "youngest first: {b}");
    let (_, _, b) = app.get("/Patient?_sort=birthdate&_count=1", &token).await;
    assert_eq!(ids(&b), ["patient-edith-clarke"], "oldest first");
    let (_, _, b) = app.get("/Patient?_summary=count", &token).await;
    assert_eq!(total(&b), 8);
    assert!(b.get("entry").is_none(), "{b}");
    let (_, _, b) = app
        .get("/Patient?_elements=name&_id=patient-jane-smith&_total=accurate", &token)
        .await;
    let r = &b["entry"][0]["resource"];
    assert!(r.get("name").is_some() && r.get("birthDate").is_none(), "{r}");
    assert_eq!(r["meta"]["tag"][0]["code"], "SUBSETTED");
    for bad in [
        "_sort=colour",
        "_total=all",
        "_summary=brief",
        "birthdate=xx1980",
        "_id=a%20b",
    ] {
        let (s, _, body) = app.get(&format!("/Patient?{bad}"), &token).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn every_version_is_in_the_history_and_can_be_read() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    let (status, _, created) = app
        .post_fhir(
            "/Patient",
            &staff,
            &new_patient(FREE_NHS_NUMBERS[0], "History", "A81001"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let mut body = created.clone();
    for given in ["Second", "Third"] {
        body["name"][0]["given"] = json!([given]);
        let (status, _, updated) = send(
            app.request(Method::PUT, &format!("/Patient/{id}"), Some(&staff))
                .header("content-type", "application/fhir+json")
                .body(body.to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        body = updated;
    }
    let (status, _, history) = app.get(&format!("/Patient/{id}/_history"), &staff).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["type"], "history");
    assert_eq!(history["total"], 3);
    let entries = history["entry"].as_array().unwrap();
    let versions: Vec<&str> = entries
        .iter()
        .map(|e| e["resource"]["meta"]["versionId"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["3", "2", "1"], "newest first");
    assert_eq!(entries[2]["request"]["method"], "POST");
    assert_eq!(entries[0]["request"]["method"], "PUT");
    assert_eq!(entries[1]["response"]["etag"], "W/\"2\"");
    for (vid, given) in [("1", json!(null)), ("2", json!("Second")), ("3", json!("Third"))] {
        let (status, headers, version) = app.get(&format!("/Patient/{id}/_history/{vid}"), &staff).await;
        assert_eq!(status, StatusCode::OK, "{version}");
        assert_eq!(headers["etag"], format!("W/\"{vid}\"").as_str());
        assert_eq!(version["meta"]["versionId"], vid);
        if !given.is_null() {
            assert_eq!(version["name"][0]["given"][0], given);
        } else {
            assert_eq!(version["name"][0]["given"], created["name"][0]["given"]);
        }
    }
    for vid in ["4", "0", "x"] {
        let (status, _, _) = app.get(&format!("/Patient/{id}/_history/{vid}"), &staff).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "version {vid}");
    }
    // Another practice sees neither the history nor the versions.
    let other = app.token("staff-tpp");
    let (status, _, _) = app.get(&format!("/Patient/{id}/_history"), &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app.get(&format!("/Patient/{id}/_history/1"), &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, capability) = app.get("/metadata", &staff).await;
    let patient = capability["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap()
        .clone();
    let codes: Vec<&str> = patient["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    for code in ["vread", "history-instance"] {
        assert!(codes.contains(&code), "{codes:?}");
    }
    assert_eq!(patient["readHistory"], true);
    assert_eq!(patient["conditionalUpdate"], true);
}

#[tokio::test]
async fn conditional_update_creates_updates_or_refuses_by_what_matches() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    let nhs = FREE_NHS_NUMBERS[1];
    let put = |query: String, body: Value| {
        send(
            app.request(Method::PUT, &format!("/Patient?{query}"), Some(&staff))
                .header("content-type", "application/fhir+json")
                .body(body.to_string()),
        )
    };
    let condition = format!("identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}");
    let (status, headers, created) = put(condition.clone(), new_patient(nhs, "Upsert", "A81001")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(headers.contains_key("location"));
    let mut body = new_patient(nhs, "Upserted", "A81001");
    let (status, _, updated) = put(condition.clone(), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["meta"]["versionId"], "2");
    assert_eq!(updated["name"][0]["family"], "Upserted");
    // If-Match applies to the match; a body naming another id is refused.
    let (status, _, _) = send(
        app.request(Method::PUT, &format!("/Patient?{condition}"), Some(&staff))
            .header("content-type", "application/fhir+json")
            .header("if-match", "W/\"1\"")
            .body(body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    body["id"] = json!("patient-jane-smith");
    let (status, _, _) = put(condition.clone(), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, outcome) = put(
        "family=smith".into(),
        new_patient(FREE_NHS_NUMBERS[2], "Smith", "A81001"),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{outcome}");
    assert_eq!(outcome_code(&outcome), "MULTIPLE_MATCHES");
    let (status, _, _) = put(String::new(), new_patient(FREE_NHS_NUMBERS[2], "None", "A81001")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Records of other practices are not matched: Moorland's condition creates, and the
    // national identifier already held by Riverside is a duplicate.
    let (status, _, outcome) = send(
        app.request(
            Method::PUT,
            &format!("/Patient?{condition}"),
            Some(&app.token("staff-tpp")),
        )
        .header("content-type", "application/fhir+json")
        .body(new_patient(nhs, "Elsewhere", "B82005").to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{outcome}");
}

#[tokio::test]
async fn unsupported_search_parameters_are_ignored_unless_strict_handling_is_asked_for() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    let (status, _, bundle) = app.get("/Patient?family=smith&_totalMethod=count", &staff).await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    assert_eq!(bundle["total"], 2);
    let own = bundle["link"][0]["url"].as_str().unwrap();
    assert!(own.contains("family=smith") && !own.contains("_totalMethod"), "{own}");
    let (status, _, outcome) = send(
        app.request(Method::GET, "/Patient?family=smith&_totalMethod=count", Some(&staff))
            .header("prefer", "handling=strict"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{outcome}");
    assert_eq!(outcome_code(&outcome), "INVALID_SEARCH_PARAMETER");
    // Names and values are checked either way.
    let (status, _, _) = app.get("/Patient?fam%00ily=smith", &staff).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_count_above_the_maximum_is_capped_and_the_self_link_says_so_unless_strict() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    let (status, _, bundle) = app.get("/Patient?organization=A81001&_count=500", &staff).await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    let own = bundle["link"][0]["url"].as_str().unwrap();
    assert_eq!(bundle["link"][0]["relation"], "self");
    assert!(own.contains("_count=100") && !own.contains("_count=500"), "{own}");
    let (status, _, outcome) = send(
        app.request(Method::GET, "/Patient?organization=A81001&_count=500", Some(&staff))
            .header("prefer", "handling=strict"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{outcome}");
    assert_eq!(outcome_code(&outcome), "INVALID_SEARCH_PARAMETER");
}

#[tokio::test]
async fn concurrent_staff_reads_are_each_answered_and_decided_for_their_own_patient() {
    // Staff reads waiting at the same moment are loaded together: each must still get its own
    // record, a missing one 404 and another practice's patient the engine's refusal.
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let (_, _, other_practice) = app.get("/Patient/patient-william-jones", &token).await;
    let refused = outcome_code(&other_practice).to_owned();
    let ours = [
        "patient-jane-smith",
        "patient-oliver-smith",
        "patient-amir-khan",
        "patient-grace-okafor",
        "patient-lucy-evans",
        "patient-daniel-jones",
    ];
    let targets: Vec<&str> = (0..60)
        .map(|k| match k % 10 {
            8 => "no-such-patient",
            9 => "patient-william-jones",
            _ => ours[k % ours.len()],
        })
        .collect();
    let reads = targets
        .iter()
        .map(|id| send(app.request(Method::GET, &format!("/Patient/{id}"), Some(&token))));
    let results = futures_util::future::join_all(reads).await;
    for (id, (status, _, body)) in targets.iter().zip(&results) {
        match *id {
            "no-such-patient" => assert_eq!(*status, StatusCode::NOT_FOUND, "{id}: {body}"),
            "patient-william-jones" => {
                assert!(status.is_client_error(), "{id}: {status}");
                assert_eq!(outcome_code(body), refused, "{id}");
            }
            _ => {
                assert_eq!(*status, StatusCode::OK, "{id}: {body}");
                assert_eq!(body["id"], *id);
            }
        }
    }
    assert_trail_verifies(&app).await;
}

#[tokio::test]
async fn concurrent_identifier_searches_each_find_their_own_record() {
    // Identifier searches waiting at the same moment are read together: each must still find
    // only its own record, and none at another practice.
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let ours = ["9990000018", "9990000026", "9990000034", "9990000042"];
    let numbers: Vec<&str> = (0..48)
        .map(|k| match k % 6 {
            4 => "9990000050",
            5 => "9990000093",
            _ => ours[k % ours.len()],
        })
        .collect();
    let searches = numbers.iter().map(|nhs| {
        send(app.request(
            Method::GET,
            &format!("/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"),
            Some(&token),
        ))
    });
    let results = futures_util::future::join_all(searches).await;
    for (nhs, (status, _, body)) in numbers.iter().zip(&results) {
        assert_eq!(*status, StatusCode::OK, "{nhs}: {body}");
        if ours.contains(nhs) {
            assert_eq!(body["total"], 1, "{nhs}: {body}");
            assert_eq!(body["entry"][0]["resource"]["identifier"][0]["value"], *nhs, "{nhs}");
        } else {
            assert_eq!(body["total"], 0, "{nhs} (another practice's, or no one's): {body}");
        }
    }
    assert_trail_verifies(&app).await;
}

#[tokio::test]
async fn a_record_moves_only_to_a_practice_where_the_caller_may_update_records() {
    let app = TestApp::spawn().await;
    let moorland = app.token("staff-tpp");
    let (_, headers, mut lily) = app.get("/Patient/patient-lily-jones", &moorland).await;
    let version = lily["meta"]["versionId"].clone();
    lily["generalPractitioner"] =
        json!([{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}}]);
    let put = |token: String, body: Value, etag: String| {
        let app = &app;
        async move {
            send(
                app.request(Method::PUT, "/Patient/patient-lily-jones", Some(&token))
                    .header("content-type", "application/fhir+json")
                    .header("if-match", etag)
                    .body(body.to_string()),
            )
            .await
        }
    };
    let etag = headers["etag"].to_str().unwrap().to_owned();
    // Moorland's administrator holds no role at Riverside: the record stays where it is.
    let (status, _, outcome) = put(moorland.clone(), lily.clone(), etag.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{outcome}");
    let (status, _, unchanged) = app.get("/Patient/patient-lily-jones", &moorland).await;
    assert_eq!(status, StatusCode::OK, "{unchanged}");
    assert_eq!(unchanged["meta"]["versionId"], version);
    assert_eq!(unchanged["generalPractitioner"][0]["identifier"]["value"], "B82005");
    // A practice that does not exist is a problem with the body, as on create.
    let mut nowhere = lily.clone();
    nowhere["generalPractitioner"] =
        json!([{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "Z99999"}}]);
    let (status, _, outcome) = put(moorland.clone(), nowhere, etag.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{outcome}");
    // Someone who may update records at both practices moves it.
    let both = app.staff_at(&["B82005", "A81001"]);
    let (status, _, moved) = put(both, lily, etag).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let (status, _, seen) = app.get("/Patient/patient-lily-jones", &app.token("staff-emis")).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["generalPractitioner"][0]["identifier"]["value"], "A81001");
    assert_trail_verifies(&app).await;
}
