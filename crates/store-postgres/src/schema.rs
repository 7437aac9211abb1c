//! The schema, as refinery migrations applied at connect. Unlike the SQLite store's history,
//! PostgreSQL starts at one migration holding every table; later changes append `V2__…`.
//! Integers are BIGINT (SQLite's INTEGER is 64-bit; PG's is 32), flags BOOLEAN, payloads BYTEA.

/// The migrations, in order: (refinery name `V<n>__<what>`, SQL).
pub(crate) const MIGRATIONS: &[(&str, &str)] = &[
    ("V1__initial", V1),
    ("V2__objects", V2),
    ("V3__workflows", crate::workflows::MIGRATION),
    ("V4__sequence_links", V4),
    ("V5__tables", crate::tables::MIGRATION),
    ("V6__stream_mappings", crate::stream_mappings::MIGRATION),
    ("V7__tables_2", crate::tables::MIGRATION_2),
    ("V8__queue_settings", crate::queues::MIGRATION),
    ("V9__activation_rollups", crate::rollups::MIGRATION),
    ("V10__traces", V10),
    ("V11__schedule_input", crate::events::INPUT_MIGRATION),
    ("V12__rollup_backfill", crate::rollups::BACKFILL_MIGRATION),
    ("V13__tenants", crate::tenants::MIGRATION),
    ("V14__message_traces", V14),
    ("V15__namespace_hosts", crate::routes::HOSTS_MIGRATION),
    ("V16__route_spaces", crate::routes::SPACES_MIGRATION),
    ("V17__activation_indexes_ascending", V17),
    (
        "V18__activation_logs_output",
        "ALTER TABLE activations ADD COLUMN logs_output_only BOOLEAN NOT NULL DEFAULT FALSE;",
    ),
];

/// The activations' time indexes in ascending order: records arrive in time order, so each new
/// entry goes to an index's right edge, where B-tree pages fill whole; in descending order it
/// went to the left edge of its range, where pages split in half. An index is read backwards
/// for `ORDER BY start_ms DESC, id DESC`.
const V17: &str = "DROP INDEX activations_by_time; DROP INDEX activations_by_function; \
CREATE INDEX activations_by_time ON activations (namespace, start_ms, id); \
CREATE INDEX activations_by_function ON activations (namespace, function, start_ms, id);";

/// Trace context carried through queues and workflows: each message's sender's
/// (`traceparent[ tracestate]`, SQS's `AWSTraceHeader`), and the context of the request that
/// started each execution.
const V14: &str = r#"
ALTER TABLE queue_messages ADD COLUMN trace TEXT;
ALTER TABLE executions ADD COLUMN trace TEXT;
"#;

/// Traces: each activation's place in its trace (see `lambent_store::trace_columns`), and the
/// trace context an async event carries (`traceparent[ tracestate]`). V8 and V9 are other
/// branches' (numbers are claimed in order of the work, not of merging).
const V10: &str = r#"
ALTER TABLE activations ADD COLUMN trace_id TEXT;
ALTER TABLE activations ADD COLUMN trace TEXT;
CREATE INDEX activations_by_trace ON activations (namespace, trace_id);
ALTER TABLE async_events ADD COLUMN trace TEXT;
"#;

/// The links between a sequence's activation and its steps' (see `lambent_core::Activation`).
const V4: &str = r#"
ALTER TABLE activations ADD COLUMN parent TEXT;
ALTER TABLE activations ADD COLUMN steps TEXT;
"#;

const V1: &str = r#"
CREATE TABLE functions (
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    config      TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    code_size   BIGINT NOT NULL,
    revision    BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE api_keys (
    key_sha256 TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE activations (
    id               TEXT PRIMARY KEY,
    namespace        TEXT NOT NULL,
    function         TEXT NOT NULL,
    revision         BIGINT NOT NULL,
    trigger          TEXT NOT NULL,
    start_ms         BIGINT NOT NULL,
    end_ms           BIGINT NOT NULL,
    duration_us      BIGINT NOT NULL,
    billed_ms        BIGINT NOT NULL,
    memory_mb        BIGINT NOT NULL,
    max_memory_bytes BIGINT,
    cold             BOOLEAN NOT NULL,
    cold_reason      TEXT,
    init_us          BIGINT,
    status           TEXT NOT NULL,
    error_type       TEXT,
    error_message    TEXT,
    logs             TEXT NOT NULL,
    init_birth       TEXT,
    init_sandbox_us  BIGINT,
    init_runtime_us  BIGINT,
    init_import_us   BIGINT,
    node             TEXT NOT NULL DEFAULT ''
);
CREATE INDEX activations_by_time ON activations (namespace, start_ms DESC, id DESC);
CREATE INDEX activations_by_function ON activations (namespace, function, start_ms DESC, id DESC);
CREATE INDEX activations_start ON activations (start_ms);

CREATE TABLE async_events (
    id         TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    function   TEXT NOT NULL,
    payload    BYTEA NOT NULL,
    trigger    TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    due_ms     BIGINT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    claims     BIGINT NOT NULL DEFAULT 0,
    leased     BOOLEAN NOT NULL DEFAULT FALSE,
    last_error TEXT,
    owner      TEXT
);
CREATE INDEX async_events_due ON async_events (due_ms);
CREATE INDEX async_events_owner ON async_events (owner) WHERE leased;
CREATE TABLE dead_letters (
    namespace     TEXT NOT NULL,
    id            TEXT NOT NULL,
    function      TEXT NOT NULL,
    payload       BYTEA NOT NULL,
    trigger       TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    failed_ms     BIGINT NOT NULL,
    attempts      BIGINT NOT NULL,
    error_type    TEXT NOT NULL,
    error_message TEXT NOT NULL,
    activation_id TEXT,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX dead_letters_by_time ON dead_letters (namespace, failed_ms DESC);
CREATE TABLE schedules (
    namespace    TEXT NOT NULL,
    name         TEXT NOT NULL,
    function     TEXT NOT NULL,
    expression   TEXT NOT NULL,
    timezone     TEXT NOT NULL,
    next_fire_ms BIGINT,
    created_ms   BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE INDEX schedules_next_fire ON schedules (next_fire_ms);

CREATE TABLE routes (
    id         TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    route      TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (method, path)
);

CREATE TABLE queues (
    namespace            TEXT NOT NULL,
    name                 TEXT NOT NULL,
    visibility_timeout_s BIGINT NOT NULL,
    delay_s              BIGINT NOT NULL,
    max_receive_count    BIGINT,
    dead_letter_queue    TEXT,
    created_ms           BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE queue_messages (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    namespace        TEXT NOT NULL,
    queue            TEXT NOT NULL,
    body             TEXT NOT NULL,
    attributes       TEXT NOT NULL,
    sent_ms          BIGINT NOT NULL,
    visible_at_ms    BIGINT NOT NULL,
    receive_count    BIGINT NOT NULL DEFAULT 0,
    first_receive_ms BIGINT NOT NULL DEFAULT 0,
    receipt          TEXT
);
CREATE INDEX queue_messages_visible ON queue_messages (namespace, queue, visible_at_ms, seq);
CREATE INDEX queue_messages_receipt ON queue_messages (receipt);
CREATE TABLE topics (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE topic_subscriptions (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    id         TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    topic      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    target     TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE event_source_mappings (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    id         TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    queue      TEXT NOT NULL,
    mapping    TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE access_keys (
    access_key_id     TEXT PRIMARY KEY,
    namespace         TEXT NOT NULL,
    secret_access_key TEXT NOT NULL,
    created_ms        BIGINT NOT NULL
);
CREATE TABLE function_versions (
    namespace   TEXT NOT NULL,
    function    TEXT NOT NULL,
    version     BIGINT NOT NULL,
    snapshot    TEXT NOT NULL,
    description TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (namespace, function, version)
);
CREATE TABLE version_counters (
    namespace    TEXT NOT NULL,
    function     TEXT NOT NULL,
    next_version BIGINT NOT NULL,
    PRIMARY KEY (namespace, function)
);
CREATE TABLE aliases (
    namespace          TEXT NOT NULL,
    function           TEXT NOT NULL,
    name               TEXT NOT NULL,
    function_version   TEXT NOT NULL,
    description        TEXT NOT NULL,
    additional_weights TEXT NOT NULL,
    revision_id        TEXT NOT NULL,
    updated_ms         BIGINT NOT NULL,
    PRIMARY KEY (namespace, function, name)
);

CREATE TABLE cluster_identity (
    one    BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    id     TEXT NOT NULL,
    secret TEXT NOT NULL
);
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    version      TEXT NOT NULL,
    started_ms   BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    draining     BOOLEAN NOT NULL,
    stats        JSONB NOT NULL
);
"#;

/// The S3-compatible object store's metadata: keys are BYTEA (ordered bytewise, as S3 lists).
const V2: &str = r#"
CREATE TABLE buckets (
    name         TEXT PRIMARY KEY,
    namespace    TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    region       TEXT NOT NULL,
    notification TEXT
);
CREATE INDEX buckets_by_namespace ON buckets (namespace, name);
CREATE TABLE objects (
    bucket           TEXT NOT NULL REFERENCES buckets (name),
    key              BYTEA NOT NULL,
    size             BIGINT NOT NULL,
    etag             TEXT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    attrs            TEXT NOT NULL,
    data             TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    bucket       TEXT NOT NULL REFERENCES buckets (name),
    key          BYTEA NOT NULL,
    initiated_ms BIGINT NOT NULL,
    attrs        TEXT NOT NULL
);
CREATE INDEX uploads_by_key ON uploads (bucket, key, id);
CREATE TABLE upload_parts (
    upload_id        TEXT NOT NULL REFERENCES uploads (id),
    number           BIGINT NOT NULL,
    size             BIGINT NOT NULL,
    etag             TEXT NOT NULL,
    checksums        TEXT NOT NULL,
    locator          TEXT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    PRIMARY KEY (upload_id, number)
);
"#;
