//! What the fuzz targets share: how one input becomes several fields, and the headers of a
//! request written as text.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// `data` as text cut into exactly `n` fields at NUL bytes (the last keeps any further NULs;
/// missing fields are empty). Invalid UTF-8 is replaced, as the parsers only take text.
pub fn fields(data: &[u8], n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let mut out: Vec<String> = text.splitn(n, '\0').map(str::to_string).collect();
    out.resize(n, String::new());
    out
}

/// Headers written one per line as `name: value`; lines that are not a valid header are
/// skipped, as a server never sees them.
pub fn headers(text: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) else {
            continue;
        };
        map.append(name, value);
    }
    map
}
