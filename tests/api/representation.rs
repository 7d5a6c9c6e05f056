//! How answers go on the wire: compression negotiated from
//! `Accept-Encoding` (with `Vary` and 304s that keep working) and sparse
//! fieldsets (`?fields=`), through real HTTP.

use std::io::Read;

use reqwest::{Method, Response};
use serde_json::Value;

use crate::{
    helpers::{TestApp, assert_problem, spawn_app},
    route_table::with_a_record,
};

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = app.authed(Method::GET, path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn decode(coding: Option<&str>, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        None => out.extend_from_slice(bytes),
        Some("br") => brotli::BrotliDecompress(&mut &bytes[..], &mut out).unwrap(),
        Some("gzip") => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("zstd") => out = zstd::stream::decode_all(bytes).unwrap(),
        Some(other) => panic!("unexpected coding {other}"),
    }
    out
}

/// The answer's coding, `Vary`, `ETag` and decoded JSON body.
async fn fetch(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, String, String, Value) {
    let response = get(app, path, headers).await;
    let status = response.status().as_u16();
    let coding = header(&response, "content-encoding").map(str::to_owned);
    let vary = header(&response, "vary").unwrap_or_default().to_owned();
    let etag = header(&response, "etag").unwrap_or_default().to_owned();
    let bytes = response.bytes().await.unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&decode(coding.as_deref(), &bytes)).unwrap()
    };
    (status, coding, vary, etag, json)
}

#[tokio::test]
async fn answers_are_compressed_as_accept_encoding_asks_with_q_values_and_identity() {
    let app = spawn_app().await;
    let path = "/v1/billing/invoices";
    let (_, coding, vary, plain_etag, plain) = fetch(&app, path, &[]).await;
    assert_eq!(coding, None, "no Accept-Encoding: as it is");
    assert!(vary.contains("Accept-Encoding"), "{vary}");
    assert!(plain_etag.starts_with('"'), "identity keeps a strong tag");
    for (accept, expected) in [
        ("br, gzip", Some("br")),
        ("gzip, deflate, br, zstd", Some("br")),
        ("gzip", Some("gzip")),
        ("zstd", Some("zstd")),
        ("br;q=0.1, gzip;q=0.9", Some("gzip")),
        ("br;q=0, zstd;q=0.5", Some("zstd")),
        ("identity", None),
        ("identity;q=1, br;q=0.5", None),
        ("deflate", None),
    ] {
        for _hit in 0..2 {
            let (status, coding, vary, etag, json) =
                fetch(&app, path, &[("accept-encoding", accept)]).await;
            assert_eq!(status, 200);
            assert_eq!(coding.as_deref(), expected, "{accept}");
            assert_eq!(json, plain, "{accept}: the same content");
            assert!(vary.contains("Accept-Encoding"), "{accept}: {vary}");
            match expected {
                Some(_) => assert_eq!(etag, format!("W/{plain_etag}"), "{accept}"),
                None => assert_eq!(etag, plain_etag, "{accept}"),
            }
        }
    }
}

#[tokio::test]
async fn a_304_answers_either_form_s_etag() {
    let app = spawn_app().await;
    let path = "/v1/billing/invoices";
    let (_, _, _, strong, _) = fetch(&app, path, &[]).await;
    let (_, _, _, weak, _) = fetch(&app, path, &[("accept-encoding", "br")]).await;
    for (tag, accept) in [
        (&strong, "br"),
        (&weak, "br"),
        (&weak, "identity"),
        (&strong, "gzip"),
    ] {
        let response = get(
            &app,
            path,
            &[("if-none-match", tag), ("accept-encoding", accept)],
        )
        .await;
        assert_eq!(response.status().as_u16(), 304, "{tag} with {accept}");
        assert!(
            header(&response, "vary")
                .unwrap()
                .contains("Accept-Encoding")
        );
        assert_eq!(header(&response, "content-encoding"), None);
        assert!(response.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn small_answers_and_routes_outside_the_cache_are_handled_too() {
    let app = spawn_app().await;
    // The balance is under 256 bytes: sent as it is, still with Vary.
    let response = get(&app, "/v1/billing/balance", &[("accept-encoding", "br")]).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(header(&response, "content-encoding"), None);
    assert!(
        header(&response, "vary")
            .unwrap()
            .contains("Accept-Encoding")
    );
    assert!(response.bytes().await.unwrap().len() < 256);
    // The OpenAPI document is not a cached read: compressed on the way out.
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, "content-encoding"), Some("gzip"));
    let bytes = response.bytes().await.unwrap();
    let document: Value = serde_json::from_slice(&decode(Some("gzip"), &bytes)).unwrap();
    assert!(document["paths"].is_object());
    // A problem is compressed when it is large enough, and readable.
    let response = get(
        &app,
        &format!("/v1/billing/invoices?fields={}", "x".repeat(300)),
        &[("accept-encoding", "zstd")],
    )
    .await;
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(header(&response, "content-encoding"), Some("zstd"));
}

#[tokio::test]
async fn fields_cut_each_item_keep_the_envelope_and_have_their_own_etag() {
    let app = spawn_app().await;
    let (_, _, _, whole_etag, whole) = fetch(&app, "/v1/billing/invoices", &[]).await;
    let path = "/v1/billing/invoices?fields=id,status,total.amount";
    let (status, _, _, etag, cut) = fetch(&app, path, &[]).await;
    assert_eq!(status, 200);
    for key in ["total", "page", "per_page"] {
        assert_eq!(cut[key], whole[key], "the envelope stays");
    }
    let items = cut["items"].as_array().unwrap();
    assert_eq!(items.len(), whole["items"].as_array().unwrap().len());
    for (item, full) in items.iter().zip(whole["items"].as_array().unwrap()) {
        let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "status", "total"], "{item}");
        assert_eq!(item["id"], full["id"]);
        assert_eq!(item["total"].as_object().unwrap().len(), 1);
        assert_eq!(item["total"]["amount"], full["total"]["amount"]);
    }
    assert!(etag.starts_with('"') && etag != whole_etag, "{etag}");
    // Sent as the partial media type the document describes, so a tool
    // checks it against what a cut answer may be.
    let sent = get(&app, path, &[]).await;
    assert_eq!(
        header(&sent, "content-type"),
        Some(gateway::representation::fields::PARTIAL_MEDIA_TYPE)
    );
    let whole_sent = get(&app, "/v1/billing/invoices", &[]).await;
    assert_eq!(
        header(&whole_sent, "content-type"),
        Some("application/json")
    );
    // Its own 304, and the whole answer's tag does not stand in for it.
    let again = get(&app, path, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(header(&again, "etag"), Some(etag.as_str()));
    let other = get(&app, path, &[("if-none-match", &whole_etag)]).await;
    assert_eq!(other.status().as_u16(), 200);
    // And compressed like any answer, when large enough.
    let (_, coding, _, br_etag, br_cut) = fetch(
        &app,
        "/v1/billing/invoices?fields=id,status,total,due_on,issued_on",
        &[("accept-encoding", "br")],
    )
    .await;
    if let Some(coding) = coding {
        assert_eq!(coding, "br");
        assert!(br_etag.starts_with("W/"));
    }
    assert!(br_cut["items"][0]["total"]["currency"].is_string());
    // The cache kept the whole answer: one call to Slitz for all of these.
    assert_eq!(app.sandbox.control.calls("GET /slitz/api/invoice"), 1);
}

#[tokio::test]
async fn an_unknown_field_is_a_400_naming_it_and_the_allowed_ones_before_any_upstream_call() {
    let app = spawn_app().await;
    let response = get(&app, "/v1/account?fields=city,password,first_name.x", &[]).await;
    let problem = assert_problem(response, 400).await;
    let error = &problem["errors"][0];
    assert_eq!(error["parameter"], "fields");
    let detail = error["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("names `password`, `first_name.x` that this answer does not have"),
        "{detail}"
    );
    assert!(
        detail.contains("city") && detail.contains("zipcode"),
        "{detail}"
    );
    assert_eq!(problem["errors"].as_array().unwrap().len(), 1);
    // The document says each name once and none empty (`uniqueItems`).
    for bad in [
        "fields=",
        "fields=id&fields=status",
        "fields=id,id",
        "fields=id,",
        "fields=id,,status",
    ] {
        let response = get(&app, &format!("/v1/billing/invoices?{bad}"), &[]).await;
        assert_problem(response, 400).await;
    }
    assert!(
        app.sandbox.control.all_calls().is_empty(),
        "nothing reached Slitz"
    );
}

/// Every read route takes every name its documented schema has, and each
/// name alone gives an answer holding only that member.
#[tokio::test]
async fn every_read_route_takes_every_documented_name() {
    let app = spawn_app().await;
    // The registry's detail route answers for a customer a write went through.
    let activated = app
        .authed(reqwest::Method::POST, "/v1/customers/6518/activate")
        .send()
        .await
        .unwrap();
    assert_eq!(activated.status(), 200);
    let document = gateway::openapi::document();
    let routes = gateway::representation::fields::read_routes(&document, gateway::routes::routes());
    assert!(routes.len() >= 10, "{}", routes.len());
    for (route, set) in routes {
        let base = with_a_record(route);
        let join = if base.contains('?') { '&' } else { '?' };
        let all = format!("{base}{join}fields={}", set.names.join(","));
        let (status, _, _, _, body) = fetch(&app, &all, &[]).await;
        assert_eq!(status, 200, "{all}: {body}");
        let top = set.names.iter().find(|n| !n.contains('.')).unwrap();
        let one = format!("{base}{join}fields={top}");
        let (status, _, _, _, body) = fetch(&app, &one, &[]).await;
        assert_eq!(status, 200, "{one}");
        let object = if set.list {
            body["items"].get(0).cloned().unwrap_or(Value::Null)
        } else {
            body.clone()
        };
        if let Some(members) = object.as_object() {
            assert!(members.keys().all(|k| k == top), "{one}: {body}");
        }
    }
}
