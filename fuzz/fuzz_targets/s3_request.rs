//! What S3 requests carry besides their signature: the XML bodies (a bucket's notification
//! configuration, CompleteMultipartUpload's part list, DeleteObjects' keys) as `s3s` reads
//! them and Lambent converts them, the `x-amz-copy-source` header, path-style paths and object
//! keys. Never panics; an accepted notification configuration survives its stored (JSON)
//! form unchanged, and matching it against any event and key never panics.
//!
//! Input: the first byte picks the body (mod 4: notification configuration, part list,
//! delete list, or `copy-source NUL path`), the rest is it.
#![no_main]

use lambent_objects::names::check_key;
use lambent_objects::{EventName, NotificationConfig};
use libfuzzer_sys::fuzz_target;
use s3s::dto::{CompletedMultipartUpload, CopySource, Delete, NotificationConfiguration};

fn xml<'a, T: s3s::xml::Deserialize<'a>>(body: &'a [u8]) -> Option<T> {
    T::deserialize(&mut s3s::xml::Deserializer::new(body)).ok()
}

const EVENTS: [EventName; 4] = [
    EventName::Put,
    EventName::Copy,
    EventName::CompleteMultipartUpload,
    EventName::Delete,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    match pick % 4 {
        0 => {
            let Some(config) = xml::<NotificationConfiguration>(body) else {
                return;
            };
            let Ok(config) = lambent_s3_api::notification_targets(config) else {
                return;
            };
            let stored = NotificationConfig::from_json(&config.to_json()).expect("stored form");
            assert_eq!(stored, config);
            for key in ["", "a", "photos/cat.jpg", "ü/ä"] {
                for event in EVENTS {
                    let _ = config.matching(event, key);
                }
            }
        }
        1 => {
            let _ = lambent_s3_api::completed_parts(xml::<CompletedMultipartUpload>(body));
        }
        2 => {
            if let Some(delete) = xml::<Delete>(body) {
                for object in delete.objects {
                    let _ = check_key(&object.key);
                }
            }
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let (source, path) = text.split_once('\0').unwrap_or((&text, ""));
            if let Ok(CopySource::Bucket { bucket, key, .. }) = CopySource::parse(source) {
                let _ = check_key(&key);
                let _ = lambent_objects::names::check_bucket_name(&bucket);
            }
            if let Ok(path) = s3s::path::parse_path_style(path) {
                if let Some((bucket, key)) = path.as_object() {
                    let _ = check_key(key);
                    let _ = lambent_objects::names::check_bucket_name(bucket);
                }
            }
        }
    }
});
