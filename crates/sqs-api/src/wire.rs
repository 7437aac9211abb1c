//! What SQS's and SNS's wire protocols share: the query protocol's form parameters, XML
//! writing, the refusals of the signature check in AWS's codes, and the request's own address
//! (queue URLs name the host the client used, so they work from outside and from sandboxes).

use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lambent_aws_api::sigv4::SigV4Error;
use lambent_aws_api::AwsError;
use lambent_gateway::credentials::CredentialError;
use std::collections::BTreeMap;

/// A query-protocol request's parameters (the query string's and the form body's), by name.
pub type Params = BTreeMap<String, String>;

/// Parses the query string and the `application/x-www-form-urlencoded` body into one map.
pub fn params(query: Option<&str>, body: &[u8]) -> Params {
    let mut out = Params::new();
    if let Some(q) = query {
        out.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    out.extend(form_urlencoded::parse(body).into_owned());
    out
}

/// The entries of a numbered list parameter: `PREFIX.1.rest=…`, `PREFIX.2.rest=…` as
/// `[{rest: …}, …]` in index order; `PREFIX.N=value` reads as `{"": value}`.
pub fn numbered(params: &Params, prefix: &str) -> Vec<Params> {
    let mut by_index: BTreeMap<u32, Params> = BTreeMap::new();
    let dotted = format!("{prefix}.");
    for (k, v) in params.range(dotted.clone()..) {
        let Some(rest) = k.strip_prefix(&dotted) else {
            break;
        };
        let (index, member) = rest.split_once('.').unwrap_or((rest, ""));
        if let Ok(i) = index.parse::<u32>() {
            by_index
                .entry(i)
                .or_default()
                .insert(member.to_string(), v.clone());
        }
    }
    by_index.into_values().collect()
}

/// `s` with XML's five special characters escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

/// Appends `<name>text</name>`.
pub fn element(out: &mut String, name: &str, text: &str) {
    out.push_str(&format!("<{name}>{}</{name}>", escape(text)));
}

/// A query-protocol success: `<OpResponse xmlns><OpResult>result</OpResult>` and the request
/// id (the result element left out when there is none).
pub fn xml_success(namespace: &str, operation: &str, result: &str, request_id: &str) -> Response {
    let result = if result.is_empty() {
        String::new()
    } else {
        format!("<{operation}Result>{result}</{operation}Result>")
    };
    xml_response(
        StatusCode::OK,
        format!(
            "<?xml version=\"1.0\"?><{operation}Response xmlns=\"{namespace}\">{result}\
             <ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>\
             </{operation}Response>"
        ),
    )
}

/// A query-protocol error: `<ErrorResponse><Error><Type/><Code/><Message/>…`.
pub fn xml_error(
    status: StatusCode,
    fault: &str,
    code: &str,
    message: &str,
    request_id: &str,
) -> Response {
    let mut error = String::new();
    element(&mut error, "Type", fault);
    element(&mut error, "Code", code);
    element(&mut error, "Message", message);
    xml_response(
        status,
        format!(
            "<?xml version=\"1.0\"?><ErrorResponse><Error>{error}<Detail/></Error>\
             <RequestId>{request_id}</RequestId></ErrorResponse>"
        ),
    )
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    r
}

/// A refused signature or credential, as SQS and SNS name it: (status, code).
pub fn access_error(e: &AwsError) -> (StatusCode, &'static str) {
    match e {
        AwsError::Signature(SigV4Error::Missing) => {
            (StatusCode::FORBIDDEN, "MissingAuthenticationToken")
        }
        AwsError::Signature(SigV4Error::Malformed(_)) => {
            (StatusCode::BAD_REQUEST, "IncompleteSignature")
        }
        AwsError::Signature(SigV4Error::UnknownAccessKey(_)) => {
            (StatusCode::FORBIDDEN, "InvalidClientTokenId")
        }
        AwsError::Signature(_) => (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
        AwsError::Credentials(CredentialError::ExpiredToken) => {
            (StatusCode::FORBIDDEN, "ExpiredToken")
        }
        AwsError::Credentials(CredentialError::Store(_)) | AwsError::Service(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure")
        }
        _ => (StatusCode::FORBIDDEN, "InvalidClientTokenId"),
    }
}

/// `scheme://host` the client addressed (its `Host`, and `X-Forwarded-Proto` behind a proxy).
pub fn origin(parts: &Parts) -> String {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let scheme = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_lists_group_by_index_in_order() {
        let p = params(
            None,
            b"Attribute.2.Name=B&Attribute.1.Name=A&Attribute.1.Value=1&Attribute.10.Name=J&AttributeName.1=All&X=y",
        );
        let attrs = numbered(&p, "Attribute");
        assert_eq!(attrs.len(), 3);
        assert_eq!(attrs[0]["Name"], "A");
        assert_eq!(attrs[0]["Value"], "1");
        assert_eq!(attrs[1]["Name"], "B");
        assert_eq!(attrs[2]["Name"], "J");
        assert_eq!(numbered(&p, "AttributeName")[0][""], "All");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<a & 'b'>\""), "&lt;a &amp; &apos;b&apos;&gt;&quot;");
    }
}
