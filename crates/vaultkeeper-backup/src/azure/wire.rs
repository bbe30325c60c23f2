//! What goes over the wire to Azure and back, without the network: Shared Key signing,
//! metadata header names, and reading the flat XML of List Blobs.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use reqwest::Method;

/// Azure metadata names must be C# identifiers: `vaultkeeper-format` becomes
/// `vaultkeeper_format`.
pub(super) fn metadata_headers(metadata: &HashMap<String, String>) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = metadata
        .iter()
        .map(|(name, value)| {
            (
                format!("x-ms-meta-{}", name.replace('-', "_")),
                value.clone(),
            )
        })
        .collect();
    headers.sort();
    headers
}

/// The `Authorization` header of Shared Key signing for one request.
pub(super) fn shared_key_authorization(
    account: &str,
    key: &[u8],
    method: &Method,
    url: &reqwest::Url,
    headers: &[(String, String)],
    content_length: usize,
) -> String {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    };
    let length = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut ms: Vec<(String, &str)> = headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_str()))
        .collect();
    ms.sort();
    let mut to_sign = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        method.as_str(),
        header("content-encoding"),
        header("content-language"),
        length,
        header("content-md5"),
        header("content-type"),
        "",
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    );
    for (name, value) in ms {
        to_sign.push_str(&format!("{name}:{}\n", value.trim()));
    }
    to_sign.push_str(&format!("/{account}{}", url.path()));
    let mut params: Vec<(String, String)> = url
        .query_pairs()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.into_owned()))
        .collect();
    params.sort();
    let mut joined: Vec<(String, String)> = Vec::new();
    for (name, value) in params {
        match joined.last_mut() {
            Some((last, values)) if *last == name => {
                values.push(',');
                values.push_str(&value);
            }
            _ => joined.push((name, value)),
        }
    }
    for (name, value) in joined {
        to_sign.push_str(&format!("\n{name}:{value}"));
    }
    let signing_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let signature = ring::hmac::sign(&signing_key, to_sign.as_bytes());
    format!(
        "SharedKey {account}:{}",
        STANDARD.encode(signature.as_ref())
    )
}

/// The inner text of every `<tag>…</tag>` in `xml` (not nested in itself). Enough for the
/// flat answers of List Blobs; not a general XML parser.
pub(super) fn xml_elements<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = &'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let end = rest[start..].find(&close)? + start;
        let inner = &rest[start..end];
        rest = &rest[end + close.len()..];
        Some(inner)
    })
}

pub(super) fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

pub(super) fn parse_http_date(text: &str) -> Option<Timestamp> {
    jiff::fmt::strtime::parse("%a, %d %b %Y %H:%M:%S GMT", text)
        .ok()?
        .to_datetime()
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::API_VERSION;

    #[test]
    fn shared_key_signs_the_canonical_request() {
        // Pins the string to sign (Azurite, which checks signatures, tests the rest).
        let url = reqwest::Url::parse(
            "http://127.0.0.1:10000/acct/c/a%20b?comp=block&blockid=dmswMDAwMDAwMA%3D%3D",
        )
        .unwrap();
        let headers = vec![
            ("x-ms-version".to_owned(), API_VERSION.to_owned()),
            (
                "x-ms-date".to_owned(),
                "Sun, 06 Dec 2026 22:00:00 GMT".to_owned(),
            ),
        ];
        let got = shared_key_authorization("acct", &[0u8; 32], &Method::PUT, &url, &headers, 5);
        let expected_to_sign = "PUT\n\n\n5\n\n\n\n\n\n\n\n\nx-ms-date:Sun, 06 Dec 2026 22:00:00 GMT\nx-ms-version:2021-12-02\n/acct/acct/c/a%20b\nblockid:dmswMDAwMDAwMA==\ncomp:block";
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[0u8; 32]);
        let expected =
            STANDARD.encode(ring::hmac::sign(&key, expected_to_sign.as_bytes()).as_ref());
        assert_eq!(got, format!("SharedKey acct:{expected}"));
    }

    #[test]
    fn list_answers_are_read_and_unescaped() {
        let xml = "<EnumerationResults><Blobs><Blob><Name>a/x&amp;y.vkb</Name><Properties><Creation-Time>Sun, 06 Dec 2026 22:00:00 GMT</Creation-Time><Content-Length>12</Content-Length></Properties></Blob><Blob><Name>b</Name></Blob></Blobs><NextMarker /></EnumerationResults>";
        let names: Vec<String> = xml_elements(xml, "Blob")
            .filter_map(|b| xml_elements(b, "Name").next().map(xml_unescape))
            .collect();
        assert_eq!(names, ["a/x&y.vkb", "b"]);
        assert_eq!(
            parse_http_date("Sun, 06 Dec 2026 22:00:00 GMT").map(|t| t.to_string()),
            Some("2026-12-06T22:00:00Z".to_owned())
        );
        assert_eq!(xml_elements(xml, "NextMarker").count(), 0);
    }

    #[test]
    fn metadata_names_become_identifiers() {
        let metadata = HashMap::from([("vaultkeeper-key-id".to_owned(), "k".to_owned())]);
        assert_eq!(
            metadata_headers(&metadata),
            [("x-ms-meta-vaultkeeper_key_id".to_owned(), "k".to_owned())]
        );
    }
}
