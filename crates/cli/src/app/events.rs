//! Event settings both formats share, spelled two ways (the Framework's camelCase, SAM's
//! PascalCase): a table stream read by a function, an S3 key filter, and a destination of
//! asynchronous invocations given as an ARN.

use super::{invalid, scalar_text, unsupported, AppError, Plan, PlanStreamMapping};
use lambent_core::{Destination, FunctionName};
use serde_yaml::Value;

/// How one format spells a stream event's settings.
pub(super) struct StreamSpelling {
    pub batch_size: &'static str,
    pub window: &'static str,
    pub start: &'static str,
    pub retries: &'static str,
    pub age: &'static str,
    pub bisect: &'static str,
    pub report: &'static str,
    pub enabled: &'static str,
    pub filter: &'static str,
    pub parallel: &'static str,
    pub tumbling: &'static str,
}

pub(super) const SLS_STREAM: StreamSpelling = StreamSpelling {
    batch_size: "batchSize",
    window: "maximumBatchingWindow",
    start: "startingPosition",
    retries: "maximumRetryAttempts",
    age: "maximumRecordAgeInSeconds",
    bisect: "bisectBatchOnFunctionError",
    report: "functionResponseType",
    enabled: "enabled",
    filter: "filterPatterns",
    parallel: "parallelizationFactor",
    tumbling: "tumblingWindowInSeconds",
};

pub(super) const SAM_STREAM: StreamSpelling = StreamSpelling {
    batch_size: "BatchSize",
    window: "MaximumBatchingWindowInSeconds",
    start: "StartingPosition",
    retries: "MaximumRetryAttempts",
    age: "MaximumRecordAgeInSeconds",
    bisect: "BisectBatchOnFunctionError",
    report: "FunctionResponseTypes",
    enabled: "Enabled",
    filter: "FilterCriteria",
    parallel: "ParallelizationFactor",
    tumbling: "TumblingWindowInSeconds",
};

/// A number property, refused when it is not one.
fn number<T: std::str::FromStr>(p: &Value, key: &str, at: &str) -> Result<Option<T>, AppError> {
    p.get(key)
        .and_then(scalar_text)
        .map(|v| {
            v.parse()
                .map_err(|_| invalid(format!("{at}.{key}"), format!("'{v}' is not a number")))
        })
        .transpose()
}

/// Whether `ReportBatchItemFailures` is asked for (a string, or a list holding it).
pub(super) fn reports_failures(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Sequence(ts)) => ts
            .iter()
            .any(|t| t.as_str() == Some("ReportBatchItemFailures")),
        Some(v) => v.as_str() == Some("ReportBatchItemFailures"),
        None => false,
    }
}

/// A DynamoDB stream event of `function` (properties `p`, already evaluated) into a mapping
/// of the table `arn` names; `None` (noted as skipped) when it is disabled.
pub(super) fn stream_mapping(
    at: &str,
    function: &str,
    arn: &str,
    p: &Value,
    sp: &StreamSpelling,
    on_failure: Option<String>,
    plan: &mut Plan,
) -> Result<Option<PlanStreamMapping>, AppError> {
    let table = super::table_from_arn(arn).ok_or_else(|| {
        invalid(
            at,
            format!("'{arn}' is not the stream of a DynamoDB table (Lambent has no Kinesis)"),
        )
    })?;
    if p.get(sp.enabled).and_then(scalar_text).as_deref() == Some("false") {
        plan.skip(at, format!("{}: false", sp.enabled));
        return Ok(None);
    }
    for key in [sp.filter, sp.tumbling] {
        if p.get(key).is_some() {
            return Err(unsupported(
                at,
                key,
                "Lambent's stream mappings deliver every record, without filters or windows",
            ));
        }
    }
    if p.get(sp.parallel).is_some() {
        plan.skip(
            format!("{at}.{}", sp.parallel),
            "a stream is read in order per key, one batch at a time",
        );
    }
    let start = p.get(sp.start).and_then(scalar_text);
    if let Some(s) = &start {
        if !matches!(s.as_str(), "LATEST" | "TRIM_HORIZON") {
            return Err(unsupported(
                at,
                format!("{}: {s}", sp.start),
                "Lambent starts a stream at LATEST or TRIM_HORIZON",
            ));
        }
    }
    Ok(Some(PlanStreamMapping {
        table,
        function: function.to_string(),
        batch_size: number(p, sp.batch_size, at)?,
        batching_window_ms: number::<u64>(p, sp.window, at)?.map(|s| s * 1000),
        starting_position: start,
        max_retries: number(p, sp.retries, at)?,
        max_record_age_s: number(p, sp.age, at)?,
        bisect_on_error: p.get(sp.bisect).and_then(scalar_text).as_deref() == Some("true"),
        report_batch_item_failures: reports_failures(p.get(sp.report)),
        on_failure,
    }))
}

/// An S3 key filter: rules written `{prefix: x}` / `{suffix: y}` (the Framework) or
/// `{Name: prefix, Value: x}` (CloudFormation, SAM), into (prefix, suffix).
pub(super) fn key_filter(
    at: &str,
    rules: Option<&Value>,
) -> Result<(Option<String>, Option<String>), AppError> {
    let (mut prefix, mut suffix) = (None, None);
    for rule in rules.and_then(Value::as_sequence).into_iter().flatten() {
        let (name, value) = match (rule.get("Name"), rule.get("Value")) {
            (Some(n), Some(v)) => (scalar_text(n), scalar_text(v)),
            _ => match rule.as_mapping().and_then(|m| m.iter().next()) {
                Some((n, v)) => (scalar_text(n), scalar_text(v)),
                None => (None, None),
            },
        };
        match (name.map(|n| n.to_ascii_lowercase()).as_deref(), value) {
            (Some("prefix"), Some(v)) => prefix = Some(v),
            (Some("suffix"), Some(v)) => suffix = Some(v),
            _ => return Err(invalid(at, "a key filter rule is a prefix or a suffix")),
        }
    }
    Ok((prefix, suffix))
}

/// S3 event names as given: one, or a list.
pub(super) fn s3_events(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(xs)) => xs.iter().filter_map(scalar_text).collect(),
        Some(v) => scalar_text(v).into_iter().collect(),
        None => vec!["s3:ObjectCreated:*".into()],
    }
}

/// A destination of asynchronous invocations from the ARN (or placeholder) of a queue, topic
/// or function.
pub(super) fn destination(at: &str, arn: &str) -> Result<Destination, AppError> {
    let is = |service: &str, placeholder: &str| {
        arn.starts_with(placeholder) || arn.starts_with(&format!("arn:aws:{service}:"))
    };
    if is("sqs", "${lambent:queue-arn:") {
        if let Some(q) = super::name_from_arn(arn) {
            return Ok(Destination::Queue(q));
        }
    }
    if is("sns", "${lambent:topic-arn:") {
        if let Some(t) = super::name_from_arn(arn) {
            return Ok(Destination::Topic(t));
        }
    }
    if is("lambda", "${lambent:function-arn:") {
        if let Some(f) = super::cfn::function_from_arn(arn) {
            let name = FunctionName::parse(&f).map_err(|e| invalid(at, e.to_string()))?;
            return Ok(Destination::Function(name));
        }
    }
    Err(unsupported(
        at,
        arn,
        "a destination is a queue, a topic or a function (no EventBridge)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_filters_read_both_spellings() {
        let sls: Value = serde_yaml::from_str("[{prefix: up/}, {suffix: .jpg}]").unwrap();
        let cfn: Value =
            serde_yaml::from_str("[{Name: Prefix, Value: up/}, {Name: suffix, Value: .jpg}]")
                .unwrap();
        for rules in [sls, cfn] {
            assert_eq!(
                key_filter("x", Some(&rules)).unwrap(),
                (Some("up/".into()), Some(".jpg".into()))
            );
        }
        let bad: Value = serde_yaml::from_str("[{middle: x}]").unwrap();
        assert!(key_filter("x", Some(&bad)).is_err());
    }

    #[test]
    fn destinations_name_a_queue_topic_or_function() {
        assert_eq!(
            destination("x", &super::super::queue_arn("dlq")).unwrap(),
            Destination::Queue("dlq".into())
        );
        assert_eq!(
            destination("x", "arn:aws:sns:eu-west-1:1:alerts").unwrap(),
            Destination::Topic("alerts".into())
        );
        assert_eq!(
            destination("x", "arn:aws:lambda:eu-west-1:1:function:audit").unwrap(),
            Destination::Function(FunctionName::parse("audit").unwrap())
        );
        assert!(destination("x", "arn:aws:events:eu-west-1:1:event-bus/default").is_err());
    }

    #[test]
    fn stream_events_become_mappings_of_their_table() {
        let p: Value = serde_yaml::from_str(
            "{BatchSize: 5, StartingPosition: TRIM_HORIZON, MaximumRetryAttempts: 2, BisectBatchOnFunctionError: true, FunctionResponseTypes: [ReportBatchItemFailures]}",
        )
        .unwrap();
        let mut plan = Plan::default();
        let m = stream_mapping(
            "x",
            "f",
            &super::super::stream_arn("orders"),
            &p,
            &SAM_STREAM,
            None,
            &mut plan,
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.table, "orders");
        assert_eq!(
            (m.batch_size, m.max_retries, m.bisect_on_error),
            (Some(5), Some(2), true)
        );
        assert!(m.report_batch_item_failures);
        let kinesis = "arn:aws:kinesis:us-east-1:1:stream/x";
        assert!(stream_mapping("x", "f", kinesis, &p, &SAM_STREAM, None, &mut plan).is_err());
    }
}
