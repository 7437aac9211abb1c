//! Lambent's functions, versions and aliases as the Lambda API shows them
//! (`FunctionConfiguration`, `AliasConfiguration`), with the fields tools rely on: ARNs,
//! base64 `CodeSha256`, ISO-8601 `LastModified`, `State: Active` and
//! `LastUpdateStatus: Successful` (boto3's waiters poll those).

use crate::arn::Scope;
use base64::Engine;
use lambent_core::Function;
use lambent_gateway::versions::LATEST;
use lambent_store::lambda::Alias;
use serde_json::{json, Value};

/// A function at `$LATEST` (`version` `None`) or at a published version.
pub fn function_configuration(
    scope: &Scope<'_>,
    f: &Function,
    version: Option<u64>,
    description: Option<&str>,
) -> Value {
    let c = &f.config;
    let name = f.name.as_str();
    let (arn, version) = match version {
        Some(v) => (scope.qualified_arn(name, &v.to_string()), v.to_string()),
        None => (scope.function_arn(name), LATEST.to_string()),
    };
    let mut view = json!({
        "FunctionName": name,
        "FunctionArn": arn,
        "Runtime": c.runtime.name(),
        "Role": format!("arn:aws:iam::{}:role/lambent-function", scope.namespace),
        "Handler": c.handler,
        "CodeSize": f.code_size,
        "Description": description.unwrap_or(&c.description),
        "Timeout": c.timeout_s,
        "MemorySize": c.memory_mb,
        "LastModified": last_modified(f.updated_ms),
        "CodeSha256": code_sha256_base64(&f.code_sha256),
        "Version": version,
        "RevisionId": revision_id(f),
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": [std::env::consts::ARCH.replace("aarch64", "arm64")],
        "EphemeralStorage": {"Size": lambent_core::limits::DEFAULT_TMP_MB},
        "TracingConfig": {"Mode": "PassThrough"},
    });
    if !c.env.is_empty() {
        view["Environment"] = json!({ "Variables": c.env });
    }
    view
}

pub fn alias_configuration(scope: &Scope<'_>, alias: &Alias) -> Value {
    let mut view = json!({
        "AliasArn": scope.qualified_arn(&alias.function, &alias.name),
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    });
    if !alias.additional_weights.is_empty() {
        view["RoutingConfig"] = json!({ "AdditionalVersionWeights": alias.additional_weights });
    }
    view
}

/// Lambda's `RevisionId`: a UUID-shaped id that changes with every change of the function.
pub fn revision_id(f: &Function) -> String {
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        f.revision as u32,
        (f.updated_ms as u64) & 0xffff_ffff_ffff
    )
}

/// Lambda shows the SHA-256 of the code base64-encoded; Lambent keeps it hex.
pub fn code_sha256_base64(hex_sha256: &str) -> String {
    let bytes = hex::decode(hex_sha256).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `2024-05-01T12:00:00.000+0000`, as Lambda writes it.
pub fn last_modified(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    );
    t.format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_hashes_look_like_lambdas() {
        assert_eq!(
            last_modified(1_700_000_000_123),
            "2023-11-14T22:13:20.123+0000"
        );
        assert_eq!(
            code_sha256_base64("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}
