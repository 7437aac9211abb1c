//! The store contract: behaviour every backend of [`Store`], [`EventStore`], [`QueueStore`],
//! [`RouteStore`] and [`ObjectStore`] must show (and, with their own macros, every backend of
//! [`WorkflowStore`](crate::workflows::WorkflowStore) and [`TableStore`](crate::tables::TableStore)), as async functions over a fresh store. A backend runs all of them
//! with [`contract_tests!`](crate::contract_tests), which expands to one `#[tokio::test]` per
//! function, each on a store of its own:
//!
//! ```ignore
//! lambent_store::contract_tests!(|| async { (Arc::new(open_store(&dir)), dir) });
//! ```
//!
//! Behind the `contract` feature (a dev-dependency feature of the backends' test crates).

use crate::events::{Claim, DeadLetter, EventStore, EventWrite, QueuedEvent, StoredSchedule};
use crate::lambda::{AccessKey, Alias};
use crate::objects::{
    Bucket, BucketCreated, BucketDeleted, Completed, ListQuery, ObjectAttrs, ObjectRecord,
    ObjectStore, Part, PartWritten, Segment, Upload, WriteIf, Written,
};
use crate::queues::{
    Attributes, Endpoint, Mapping, Message, NewMessage, QueueConfig, QueueCounts, QueueStore,
    ReceiveRequest, Subscription, Topic,
};
use crate::routes::{Claimed, HostClaim, Released, RoutePut, RouteStore};
use crate::tenants::{ApiKey, AuditEntry, AuditQuery, Purged, StorageUse, RECORD_TABLES};
use crate::{ActivationCursor, ActivationQuery, Store, StoreError};
use lambent_core::tenancy::{Namespace, NamespaceSettings, Role};
use lambent_core::{
    Activation, ActivationStatus, Function, FunctionName, FunctionSpec, Route, RouteSpec,
};
use std::sync::Arc;

/// Everything a full backend implements.
pub trait ContractStore:
    Store + EventStore + QueueStore + RouteStore + ObjectStore + TableStore
{
}
impl<T: Store + EventStore + QueueStore + RouteStore + ObjectStore + TableStore> ContractStore
    for T
{
}

/// What a test's `make` returns: a fresh store, alone or with a guard that keeps what it needs
/// (a temporary directory, a server) until the test ends.
pub trait Fixture {
    type Store: ContractStore;
    fn store(&self) -> Arc<Self::Store>;
}

impl<S: ContractStore> Fixture for Arc<S> {
    type Store = S;
    fn store(&self) -> Arc<S> {
        self.clone()
    }
}

impl<S: ContractStore, G> Fixture for (Arc<S>, G) {
    type Store = S;
    fn store(&self) -> Arc<S> {
        self.0.clone()
    }
}

/// Expands to one `#[tokio::test]` per contract function; `$make` is called once per test and
/// returns a future of a fresh [`Fixture`] (an `Arc` of the store, or one with a guard).
#[macro_export]
macro_rules! contract_tests {
    ($make:expr) => {
        $crate::contract_tests!(@each $make;
            functions_round_trip,
            activations_page_newest_first,
            cold_start_breakdowns_round_trip,
            activation_nodes_round_trip_and_retried_batches_are_tolerated,
            a_record_written_again_keeps_the_first_and_counts_once,
            logs_framed_by_lambent_read_back_whole_and_others_as_they_were,
            the_recorder_writes_every_record_sent_before_a_flush,
            activations_filter_by_time_cold_and_text,
            rollups_count_each_record_once_per_minute_and_hour,
            usage_sums_in_the_store_what_the_records_sum_to,
            sequences_and_their_activation_links_round_trip,
            activation_traces_round_trip_and_are_found_by_trace_id,
            events_carry_their_trace_context,
            api_keys_carry_a_namespace_role_and_expiry_and_rotate,
            namespaces_are_created_once_updated_and_listed,
            a_purge_leaves_nothing_of_the_namespace_and_all_of_the_others,
            storage_use_counts_objects_parts_items_and_message_bytes_per_namespace,
            audit_entries_are_kept_per_namespace_newest_first,
            leases_fence_stale_workers,
            a_fire_applies_once,
            a_one_shot_fire_deletes_its_schedule,
            schedules_are_created_replaced_listed_and_deleted,
            a_schedule_keeps_its_input,
            retries_completions_and_destinations,
            dead_letters_are_kept_and_redriven,
            claims_record_their_owner_and_honour_affinity,
            release_leases_spares_live_owners,
            release_leases_of_one_owner,
            access_keys_belong_to_one_namespace,
            versions_number_up_and_an_unchanged_revision_is_not_republished,
            aliases_are_created_once_and_updated_by_revision,
            route_keys_stay_unique,
            two_namespaces_never_share_a_route,
            hosts_are_claimed_by_one_namespace_and_released,
            receive_hides_redrives_and_deletes,
            dead_letters_move_back_to_their_queue,
            messages_carry_their_senders_trace,
            queues_topics_subscriptions_and_mappings,
            queue_settings_retention_and_subscription_attributes,
            buckets_have_global_names_and_are_deleted_only_empty,
            object_writes_are_conditional_and_hand_back_what_they_replace,
            listings_roll_up_delimiters_and_page_by_marker,
            multipart_uploads_complete_or_abort_once
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let fixture = ($make)().await;
                $crate::contract::$name($crate::contract::Fixture::store(&fixture)).await;
                drop(fixture);
            }
        )*
    };
}

/// Expands to the upgrade test of the rollups: `$legacy` takes activation records and
/// returns a future of a [`Fixture`] whose store was opened over a database the last version
/// without rollups wrote those records into (each backend builds it at that schema).
#[macro_export]
macro_rules! rollup_backfill_contract_tests {
    ($legacy:expr) => {
        #[tokio::test]
        async fn rollups_backfill_records_written_before_them() {
            $crate::contract::rollups_backfill_records_written_before_them($legacy).await;
        }
    };
}

/// A function named `name` at `revision` in namespace `default`.
pub fn function(name: &str, revision: u64) -> Function {
    let config = FunctionSpec {
        runtime: "python3.11".into(),
        handler: Some("app.handler".into()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    Function {
        namespace: "default".into(),
        name: FunctionName::parse(name).unwrap(),
        config,
        code_sha256: "ab".repeat(32),
        code_size: 10,
        revision,
        created_ms: 1,
        updated_ms: 2,
    }
}

/// An activation of `default/f` on node `n1`.
pub fn activation(id: &str, start_ms: i64, status: ActivationStatus) -> Activation {
    Activation {
        id: id.into(),
        namespace: "default".into(),
        function: "f".into(),
        revision: 1,
        trigger: "api".into(),
        start_ms,
        end_ms: start_ms + 1,
        duration_us: 1500,
        billed_ms: 2,
        memory_mb: 128,
        max_memory_bytes: Some(1 << 20),
        cold: true,
        cold_reason: Some(lambent_core::ColdReason::FirstRequest),
        init_us: Some(5000),
        init: None,
        status,
        error_type: None,
        error_message: None,
        logs: "hello\n".into(),
        node: "n1".into(),
        parent: None,
        steps: Vec::new(),
        trace: None,
    }
}

/// A claim of every function's events by `local`.
pub fn claim(now_ms: i64, limit: usize, lease_until_ms: i64) -> Claim<'static> {
    Claim {
        now_ms,
        limit,
        lease_until_ms,
        owner: "local",
        home: None,
        spill_after_ms: 0,
    }
}

/// A pending event of `default/f`.
pub fn event(id: &str, due_ms: i64) -> QueuedEvent {
    QueuedEvent {
        id: id.into(),
        namespace: "default".into(),
        function: "f".into(),
        payload: b"{}".to_vec(),
        trigger: "async".into(),
        created_ms: 1,
        due_ms,
        attempts: 0,
        claims: 0,
        trace: None,
        hop: None,
    }
}

fn ids(events: &[QueuedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.id.as_str()).collect()
}

pub async fn functions_round_trip<S: ContractStore>(store: Arc<S>) {
    store.put_function(&function("a", 1), 0).await.unwrap();
    assert!(matches!(
        store.put_function(&function("a", 2), 0).await,
        Err(StoreError::Conflict(..))
    ));
    assert!(matches!(
        store.put_function(&function("a", 2), 5).await,
        Err(StoreError::Conflict(..))
    ));
    assert!(matches!(
        store.put_function(&function("b", 1), 1).await,
        Err(StoreError::Conflict(..))
    ));
    store.put_function(&function("a", 2), 1).await.unwrap();
    let got = store.get_function("default", "a").await.unwrap().unwrap();
    assert_eq!(got, function("a", 2));
    assert_eq!(store.get_function("default", "b").await.unwrap(), None);
    store.put_function(&function("c", 1), 0).await.unwrap();
    let names: Vec<_> = store
        .list_functions("default")
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name.to_string())
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(store.all_functions().await.unwrap().len(), 2);
    assert!(store.list_functions("other").await.unwrap().is_empty());
    assert!(store.delete_function("default", "a").await.unwrap());
    assert!(!store.delete_function("default", "a").await.unwrap());
    // Deleted: it may be created again from revision 0.
    store.put_function(&function("a", 3), 0).await.unwrap();
}

pub async fn activations_page_newest_first<S: ContractStore>(store: Arc<S>) {
    let batch: Vec<_> = (0..5)
        .map(|i| {
            let st = if i == 2 {
                ActivationStatus::Timeout
            } else {
                ActivationStatus::Success
            };
            activation(&format!("id{i}"), 100 + i, st)
        })
        .collect();
    store.insert_activations(&batch).await.unwrap();
    let mut q = ActivationQuery {
        namespace: "default".into(),
        limit: 2,
        ..Default::default()
    };
    let page1 = store.query_activations(&q).await.unwrap();
    assert_eq!(
        page1.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["id4", "id3"]
    );
    let last = page1.last().unwrap();
    q.before = Some(ActivationCursor {
        start_ms: last.start_ms,
        id: last.id.clone(),
    });
    let page2 = store.query_activations(&q).await.unwrap();
    assert_eq!(
        page2.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["id2", "id1"]
    );
    q.before = None;
    q.status = Some(ActivationStatus::Timeout);
    assert_eq!(store.query_activations(&q).await.unwrap().len(), 1);
    q.status = None;
    q.function = Some("f".into());
    q.since_ms = Some(103);
    q.limit = 100;
    assert_eq!(store.query_activations(&q).await.unwrap().len(), 2);
    q.function = Some("g".into());
    assert!(store.query_activations(&q).await.unwrap().is_empty());
    assert_eq!(
        store
            .get_activation("default", "id0")
            .await
            .unwrap()
            .unwrap(),
        batch[0]
    );
    assert_eq!(store.get_activation("other", "id0").await.unwrap(), None);
    assert_eq!(store.prune_activations(102).await.unwrap(), 2);
}

pub async fn cold_start_breakdowns_round_trip<S: ContractStore>(store: Arc<S>) {
    let mut zygote = activation("zygote", 100, ActivationStatus::Success);
    zygote.init = Some(lambent_core::InitBreakdown {
        birth: lambent_core::Birth::Zygote,
        sandbox_us: 900,
        runtime_us: 1200,
        import_us: Some(51_000),
    });
    let mut provided = activation("provided", 101, ActivationStatus::InitError);
    provided.init = Some(lambent_core::InitBreakdown {
        birth: lambent_core::Birth::Exec,
        sandbox_us: 1500,
        runtime_us: 300,
        import_us: None,
    });
    provided.error_type = Some("Runtime.ExitError".into());
    provided.error_message = Some("exit 1".into());
    let mut warm = activation("warm", 102, ActivationStatus::Success);
    (
        warm.cold,
        warm.cold_reason,
        warm.init_us,
        warm.max_memory_bytes,
    ) = (false, None, None, None);
    let batch = [zygote, provided, warm];
    store.insert_activations(&batch).await.unwrap();
    for a in &batch {
        let got = store.get_activation("default", &a.id).await.unwrap();
        assert_eq!(got.as_ref(), Some(a));
    }
}

pub async fn activation_nodes_round_trip_and_retried_batches_are_tolerated<S: ContractStore>(
    store: Arc<S>,
) {
    let mut a = activation("a", 100, ActivationStatus::Success);
    a.node = "node-7".into();
    let mut b = activation("b", 101, ActivationStatus::Success);
    b.node = String::new();
    let batch = [a, b];
    store.insert_activations(&batch).await.unwrap();
    // A recorder retrying a batch whose commit it did not see.
    store.insert_activations(&batch).await.unwrap();
    store.insert_activations(&[]).await.unwrap();
    for a in &batch {
        let got = store.get_activation("default", &a.id).await.unwrap();
        assert_eq!(got.as_ref().map(|g| g.node.as_str()), Some(a.node.as_str()));
    }
    let all = store
        .query_activations(&ActivationQuery {
            namespace: "default".into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
}

/// A record whose id is taken (a retried batch, or one id twice in a batch) is not written
/// again: the first one stays, counted once in the rollups.
pub async fn a_record_written_again_keeps_the_first_and_counts_once<S: ContractStore>(
    store: Arc<S>,
) {
    use crate::rollups::{RollupQuery, HOUR_MS};
    let first = activation("a", 100, ActivationStatus::Success);
    let mut again = first.clone();
    again.logs = "written again\n".into();
    store
        .insert_activations(std::slice::from_ref(&first))
        .await
        .unwrap();
    store
        .insert_activations(&[
            again.clone(),
            activation("b", 101, ActivationStatus::Success),
            again,
        ])
        .await
        .unwrap();
    let got = store.get_activation("default", "a").await.unwrap();
    assert_eq!(got.as_ref(), Some(&first));
    let rollups = store
        .activation_rollups(&RollupQuery {
            namespace: "default".into(),
            function: None,
            since_ms: 0,
            until_ms: HOUR_MS,
            step_ms: HOUR_MS,
        })
        .await
        .unwrap();
    assert_eq!(
        rollups.iter().map(|r| r.count).sum::<u64>(),
        2,
        "{rollups:?}"
    );
}

/// Logs that are [`Activation::framed_logs`] of the function's output (stored as the output
/// alone) read back exactly as they were sent, a platform error line and the init duration
/// included, and so do logs written any other way; the text filter finds the output.
pub async fn logs_framed_by_lambent_read_back_whole_and_others_as_they_were<S: ContractStore>(
    store: Arc<S>,
) {
    let mut framed = activation("framed", 100, ActivationStatus::Success);
    framed.logs = framed.framed_logs("order 44 packed\nand sent\n");
    let mut timed_out = activation("timed-out", 101, ActivationStatus::Timeout);
    (timed_out.init_us, timed_out.cold) = (None, false);
    timed_out.error_type = Some("Sandbox.Timedout".into());
    timed_out.error_message = Some("Task timed out after 3.00 seconds".into());
    timed_out.logs = timed_out.framed_logs("no newline at the end");
    let mut silent = activation("silent", 102, ActivationStatus::Success);
    silent.logs = silent.framed_logs("");
    let mut other = activation("other", 103, ActivationStatus::Success);
    other.logs = "START RequestId: other Version: $LATEST\nnot framed by Lambent\n".into();
    let batch = [framed, timed_out, silent, other];
    assert!(batch[0].logs.starts_with("START RequestId: framed"));
    assert!(batch[1]
        .logs
        .contains("timed-out Sandbox.Timedout: Task timed out"));
    store.insert_activations(&batch).await.unwrap();
    for sent in &batch {
        let got = store.get_activation("default", &sent.id).await.unwrap();
        assert_eq!(got.as_ref(), Some(sent), "{}", sent.id);
    }
    let found = store
        .query_activations(&ActivationQuery {
            namespace: "default".into(),
            limit: 10,
            text: Some("order 44".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found, vec![batch[0].clone()]);
}

/// The record writer ([`crate::recorder::Recorder`]) over this store: every record sent before a
/// flush is written, across more than one transaction's worth, and it goes on after.
pub async fn the_recorder_writes_every_record_sent_before_a_flush<S: ContractStore>(store: Arc<S>) {
    use crate::recorder::{Recorder, MAX_BATCH};
    let written = || {
        let store = store.clone();
        async move {
            let q = ActivationQuery {
                namespace: "default".into(),
                limit: 10_000,
                ..Default::default()
            };
            store.query_activations(&q).await.unwrap().len()
        }
    };
    let recorder = Recorder::start(store.clone());
    let n = 2 * MAX_BATCH + 17;
    for i in 0..n {
        let start_ms = 1_000 + i as i64;
        recorder.record(activation(
            &format!("a{i:05}"),
            start_ms,
            ActivationStatus::Success,
        ));
    }
    recorder.flush().await;
    assert_eq!(written().await, n);
    recorder.record(activation("b", 5_000, ActivationStatus::Success));
    recorder.flush().await;
    assert_eq!(written().await, n + 1);
}

pub async fn activations_filter_by_time_cold_and_text<S: ContractStore>(store: Arc<S>) {
    let mut warm = activation("warm", 200, ActivationStatus::Success);
    (warm.cold, warm.logs) = (false, "order 42 shipped\n".into());
    let mut failed = activation("failed", 300, ActivationStatus::FunctionError);
    failed.error_message = Some("order 43 lost".into());
    let batch = [
        activation("cold", 100, ActivationStatus::Success),
        warm,
        failed,
    ];
    store.insert_activations(&batch).await.unwrap();
    let ids = |q: ActivationQuery| {
        let store = store.clone();
        async move {
            let page = store.query_activations(&q).await.unwrap();
            page.into_iter().map(|a| a.id).collect::<Vec<_>>()
        }
    };
    let q = || ActivationQuery {
        namespace: "default".into(),
        limit: 10,
        ..Default::default()
    };
    let cold = ids(ActivationQuery {
        cold: Some(true),
        ..q()
    });
    assert_eq!(cold.await, ["failed", "cold"]);
    let warm = ids(ActivationQuery {
        cold: Some(false),
        ..q()
    });
    assert_eq!(warm.await, ["warm"]);
    let window = ids(ActivationQuery {
        since_ms: Some(100),
        until_ms: Some(300),
        ..q()
    });
    assert_eq!(window.await, ["warm", "cold"]);
    let text = ids(ActivationQuery {
        text: Some("order 4".into()),
        ..q()
    });
    assert_eq!(text.await, ["failed", "warm"]);
}

/// The store's usage aggregates equal [`lambent_core::metering::aggregate`] over the same
/// records, for every grouping, with and without a function and a `since_ms` filter
/// (percentiles, billed ms per memory size, peak and latest memory included); another
/// namespace's records never count, and pruned records no longer do.
pub async fn usage_sums_in_the_store_what_the_records_sum_to<S: ContractStore>(store: Arc<S>) {
    use crate::usage::UsageQuery;
    use lambent_core::metering::{aggregate, Grouping, DAY_MS};
    const STATUSES: [ActivationStatus; 4] = [
        ActivationStatus::Success,
        ActivationStatus::Throttled,
        ActivationStatus::FunctionError,
        ActivationStatus::Timeout,
    ];
    let midnight = DAY_MS;
    let mut records: Vec<Activation> = (0..40u64)
        .map(|i| {
            // Around a UTC midnight, one a minute; the last two start together.
            let start = midnight - 20 * 60_000 + (i.min(38) as i64) * 60_000;
            let status = if i % 4 == 1 || i % 5 == 0 {
                STATUSES[(i % 4) as usize]
            } else {
                ActivationStatus::Success
            };
            let mut a = activation(&format!("a{i:02}"), start, status);
            a.function = if i % 3 == 0 { "g" } else { "f" }.into();
            a.cold = i % 4 == 0;
            a.memory_mb = [128, 256, 1024][(i as usize / 2) % 3];
            a.duration_us = (i * 7919 % 1000) * 100 + 1;
            a.billed_ms = a.duration_us / 1000 + 1;
            a.max_memory_bytes = (i % 6 != 0).then_some(i * 1_000_003);
            a
        })
        .collect();
    // Before the epoch: its day rounds down.
    records.push(activation("early", -5, ActivationStatus::Success));
    let mut other = activation("other-ns", midnight, ActivationStatus::Success);
    other.namespace = "other".into();
    records.push(other);
    store.insert_activations(&records[..20]).await.unwrap();
    store.insert_activations(&records[20..]).await.unwrap();

    let since = midnight - 5 * 60_000 + 30_000; // inside a minute
    let expect = |records: &[Activation], q: &UsageQuery| {
        let kept = records.iter().filter(|a| {
            a.namespace == q.namespace
                && q.function.as_ref().is_none_or(|f| &a.function == f)
                && q.since_ms.is_none_or(|s| a.start_ms >= s)
        });
        aggregate(kept, q.by)
    };
    let mut checked = 0;
    for by in [
        None,
        Some(Grouping::Function),
        Some(Grouping::Namespace),
        Some(Grouping::Day),
    ] {
        for function in [None, Some("f".to_string())] {
            for since_ms in [None, Some(since)] {
                let q = UsageQuery {
                    namespace: "default".into(),
                    function: function.clone(),
                    since_ms,
                    by,
                };
                let got = store.usage(&q).await.unwrap();
                let want = expect(&records, &q);
                assert!(!want.is_empty());
                assert_eq!(got, want, "{q:?}");
                checked += got.len();
            }
        }
    }
    assert!(checked > 20, "the groupings split the records: {checked}");
    // The filters and groupings matter: the total shrinks with each filter, days split.
    let total = |function: Option<&str>, since_ms| {
        let store = store.clone();
        let q = UsageQuery {
            namespace: "default".into(),
            function: function.map(str::to_string),
            since_ms,
            by: None,
        };
        async move { store.usage(&q).await.unwrap()[0].clone() }
    };
    let all = total(None, None).await;
    let f = total(Some("f"), None).await;
    let recent = total(None, Some(since)).await;
    assert_eq!(all.invocations + all.throttles, 41);
    assert!(f.invocations < all.invocations && recent.invocations < all.invocations);
    assert!(all.throttles > 0 && all.errors > 0 && all.cold_starts > 0);
    assert!(all.billed_by_memory.len() == 3 && all.p50_us < all.p99_us);
    let days = UsageQuery {
        namespace: "default".into(),
        function: None,
        since_ms: None,
        by: Some(Grouping::Day),
    };
    assert_eq!(store.usage(&days).await.unwrap().len(), 3);

    let nobody = UsageQuery {
        namespace: "nobody".into(),
        ..days.clone()
    };
    assert!(store.usage(&nobody).await.unwrap().is_empty());

    // Pruned records leave the answer (the rollups keep them).
    store.prune_activations(midnight).await.unwrap();
    let q = UsageQuery { by: None, ..days };
    let kept: Vec<Activation> = records
        .into_iter()
        .filter(|a| a.start_ms >= midnight)
        .collect();
    assert_eq!(store.usage(&q).await.unwrap(), expect(&kept, &q));
}

/// Rollups add every record once (a retried batch adds nothing), at minute and hour
/// resolutions, summed per step; throttles are counted but neither billed nor timed.
pub async fn rollups_count_each_record_once_per_minute_and_hour<S: ContractStore>(store: Arc<S>) {
    use crate::rollups::{percentile_us, RollupQuery, DAY_MS, HOUR_MS, MINUTE_MS};
    let t0 = 1_700_000_000_000 / HOUR_MS * HOUR_MS;
    let mut cold = activation("c", t0 + 1_000, ActivationStatus::Success);
    cold.init = Some(lambent_core::InitBreakdown {
        birth: lambent_core::Birth::Zygote,
        sandbox_us: 900,
        runtime_us: 1200,
        import_us: Some(3000),
    });
    let mut warm = activation("w", t0 + 61_000, ActivationStatus::FunctionError);
    (warm.cold, warm.init_us, warm.duration_us) = (false, None, 100_000);
    warm.max_memory_bytes = Some(50 << 20);
    let mut throttled = activation("t", t0 + 62_000, ActivationStatus::Throttled);
    (throttled.cold, throttled.init_us, throttled.billed_ms) = (false, None, 0);
    let mut other = activation("g", t0 + HOUR_MS + 5, ActivationStatus::Success);
    other.function = "g".into();
    let batch = [cold, warm, throttled, other];
    store.insert_activations(&batch).await.unwrap();
    store.insert_activations(&batch).await.unwrap();
    let q = |function: Option<&str>, step_ms| RollupQuery {
        namespace: "default".into(),
        function: function.map(str::to_string),
        since_ms: t0,
        until_ms: t0 + 2 * HOUR_MS,
        step_ms,
    };
    let minutes = store
        .activation_rollups(&q(Some("f"), MINUTE_MS))
        .await
        .unwrap();
    assert_eq!(minutes.len(), 2, "{minutes:?}");
    let (first, second) = (&minutes[0], &minutes[1]);
    assert_eq!((first.start_ms, first.count, first.cold), (t0, 1, 1));
    assert_eq!(
        (first.init_us, first.init_sandbox_us, first.init_runtime_us),
        (5000, 900, 1200)
    );
    assert_eq!((first.init_import_us, first.duration_us), (3000, 1500));
    assert_eq!(
        (
            second.start_ms,
            second.count,
            second.throttles,
            second.errors
        ),
        (t0 + MINUTE_MS, 2, 1, 1)
    );
    assert_eq!(second.invocations(), 1);
    // The throttled record billed nothing: 2 ms × 128 MB of the one that ran.
    assert_eq!((second.billed_ms, second.mb_ms), (2, 256));
    assert_eq!((second.max_memory_bytes, second.memory_mb), (50 << 20, 128));
    let hours = store.activation_rollups(&q(None, HOUR_MS)).await.unwrap();
    let summary: Vec<_> = hours
        .iter()
        .map(|r| (r.function.as_str(), r.start_ms, r.count))
        .collect();
    assert_eq!(summary, [("f", t0, 3), ("g", t0 + HOUR_MS, 1)]);
    let day = t0.div_euclid(DAY_MS) * DAY_MS;
    let days = RollupQuery {
        since_ms: day,
        until_ms: day + DAY_MS,
        step_ms: DAY_MS,
        ..q(None, DAY_MS)
    };
    assert_eq!(days.resolution_ms(), DAY_MS);
    let days = store.activation_rollups(&days).await.unwrap();
    let summary: Vec<_> = days
        .iter()
        .map(|r| (r.function.as_str(), r.start_ms, r.count))
        .collect();
    assert_eq!(summary, [("f", day, 3), ("g", day, 1)]);
    let whole = store
        .activation_rollups(&q(Some("f"), 2 * HOUR_MS))
        .await
        .unwrap();
    assert_eq!(whole.len(), 1);
    assert_eq!((whole[0].count, whole[0].errors, whole[0].cold), (3, 1, 1));
    let histogram = store
        .duration_histogram(&q(Some("f"), 2 * HOUR_MS))
        .await
        .unwrap();
    let counts: Vec<(i32, u64)> = histogram.iter().map(|h| (h.bucket, h.count)).collect();
    assert_eq!(counts.iter().map(|(_, c)| c).sum::<u64>(), 2);
    let p99 = percentile_us(&counts, 99.0).unwrap();
    assert!((95_000..=105_000).contains(&p99), "{p99}");
    let elsewhere = RollupQuery {
        namespace: "other".into(),
        ..q(None, HOUR_MS)
    };
    assert!(store
        .activation_rollups(&elsewhere)
        .await
        .unwrap()
        .is_empty());
}

/// A sequence is stored as a function (runtime `sequence`, its components in its config); its
/// activation lists its steps' and each step's names it as parent.
/// A data dir from before the rollups: its records are listed by the upgrade and folded into
/// the rollups by [`Store::backfill_rollups`] in bounded steps, each record once (also one
/// written again after the upgrade, as a retried batch would), leaving the rollups as if
/// every record had been counted when written.
pub async fn rollups_backfill_records_written_before_them<F, Fut, X>(legacy: F)
where
    F: FnOnce(Vec<Activation>) -> Fut,
    Fut: std::future::Future<Output = X>,
    X: Fixture,
{
    use crate::rollups::{fold, RollupQuery, DAY_MS, HOUR_MS, MINUTE_MS};
    let t0 = 1_700_000_000_000 / DAY_MS * DAY_MS;
    let statuses = [
        ActivationStatus::Success,
        ActivationStatus::FunctionError,
        ActivationStatus::Throttled,
    ];
    let old: Vec<Activation> = (0..25i64)
        .map(|i| {
            let mut a = activation(
                &format!("old-{i:02}"),
                t0 + i * 7_000,
                statuses[i as usize % 3],
            );
            a.function = if i % 4 == 0 { "g" } else { "f" }.into();
            a.duration_us = 1_000 * (i as u64 + 1);
            a.billed_ms = i as u64 + 1;
            a.max_memory_bytes = Some((i as u64 + 1) << 20);
            a.cold = i % 5 == 0;
            a.init_us = a.cold.then_some(4_000);
            a.init = a.cold.then_some(lambent_core::InitBreakdown {
                birth: lambent_core::Birth::Zygote,
                sandbox_us: 900,
                runtime_us: 1_200,
                import_us: Some(1_500),
            });
            a
        })
        .collect();
    let fixture = legacy(old.clone()).await;
    let store = fixture.store();
    let q = |step_ms| RollupQuery {
        namespace: "default".into(),
        function: None,
        since_ms: t0,
        until_ms: t0 + DAY_MS,
        step_ms,
    };
    assert!(store
        .activation_rollups(&q(MINUTE_MS))
        .await
        .unwrap()
        .is_empty());
    // Written since the upgrade: a new record counts at once; an old one written again does
    // not (it is the backfill's to count).
    let new = activation("new", t0 + 30_000, ActivationStatus::Success);
    store
        .insert_activations(&[new.clone(), old[3].clone()])
        .await
        .unwrap();
    let now = store.activation_rollups(&q(HOUR_MS)).await.unwrap();
    assert_eq!(
        now.iter().map(|r| r.count).sum::<u64>(),
        1,
        "only the new record: {now:?}"
    );
    // Bounded steps, until none remain; then nothing more.
    let mut steps = Vec::new();
    loop {
        let n = store.backfill_rollups(10).await.unwrap();
        if n == 0 {
            break;
        }
        steps.push(n);
    }
    assert_eq!(steps, [10, 10, 5]);
    assert_eq!(store.backfill_rollups(10).await.unwrap(), 0);
    // As if every record had been counted when written, at every resolution.
    let mut all = old;
    all.push(new);
    for (res, step) in [(MINUTE_MS, MINUTE_MS), (HOUR_MS, HOUR_MS), (DAY_MS, DAY_MS)] {
        let want = fold(&all)
            .into_iter()
            .find(|f| f.resolution_ms == res)
            .unwrap();
        let mut got = store.activation_rollups(&q(step)).await.unwrap();
        let mut want_rows = want.rollups;
        got.sort_by(|a, b| (&a.function, a.start_ms).cmp(&(&b.function, b.start_ms)));
        want_rows.sort_by(|a, b| (&a.function, a.start_ms).cmp(&(&b.function, b.start_ms)));
        assert_eq!(got, want_rows, "rollups at {res} ms");
        let mut got = store.duration_histogram(&q(step)).await.unwrap();
        let mut want_hist = want.histogram;
        let key = |h: &crate::rollups::HistogramRow| (h.function.clone(), h.start_ms, h.bucket);
        got.sort_by_key(key);
        want_hist.sort_by_key(key);
        assert_eq!(got, want_hist, "histogram at {res} ms");
    }
}

pub async fn sequences_and_their_activation_links_round_trip<S: ContractStore>(store: Arc<S>) {
    let components = ["a".to_string(), "b".to_string(), "a".to_string()];
    let mut seq = function("seq", 1);
    seq.config = lambent_core::FunctionConfig::sequence(&components, 9, Some("s".into())).unwrap();
    (seq.code_sha256, seq.code_size) = (String::new(), 0);
    store.put_function(&seq, 0).await.unwrap();
    let got = store.get_function("default", "seq").await.unwrap().unwrap();
    assert_eq!(got, seq);
    assert!(got.config.is_sequence());
    assert_eq!(
        got.config
            .sequence
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
        ["a", "b", "a"]
    );

    let mut parent = activation("p", 100, ActivationStatus::FunctionError);
    parent.steps = vec!["p-1".into(), "p-2.1".into()];
    let mut first = activation("p-1", 100, ActivationStatus::Success);
    first.parent = Some("p".into());
    let mut second = activation("p-2.1", 101, ActivationStatus::FunctionError);
    second.parent = Some("p".into());
    let plain = activation("plain", 102, ActivationStatus::Success);
    let batch = [parent, first, second, plain];
    store.insert_activations(&batch).await.unwrap();
    for a in &batch {
        let got = store.get_activation("default", &a.id).await.unwrap();
        assert_eq!(got.as_ref(), Some(a));
    }
    let page = store
        .query_activations(&ActivationQuery {
            namespace: "default".into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let parent = page.iter().find(|a| a.id == "p").unwrap();
    assert_eq!(parent.steps, ["p-1", "p-2.1"]);
}

/// A trace context of trace `t` (1 hex digit repeated) from span `s`.
fn trace_context(t: char, s: char) -> lambent_core::TraceContext {
    let tp = format!(
        "00-{}-{}-01",
        t.to_string().repeat(32),
        s.to_string().repeat(16)
    );
    lambent_core::TraceContext::from_traceparent(&tp, Some("k=v")).unwrap()
}

pub async fn activation_traces_round_trip_and_are_found_by_trace_id<S: ContractStore>(
    store: Arc<S>,
) {
    use lambent_core::{ActivationTrace, HttpTrigger, TraceOrigin};
    let traced = |id: &str, start_ms, origin: TraceOrigin| {
        let mut a = activation(id, start_ms, ActivationStatus::Success);
        a.trace = Some(ActivationTrace::start(origin, start_ms * 1000 + 7));
        a
    };
    let root = traced(
        "root",
        100,
        TraceOrigin {
            http: Some(HttpTrigger {
                method: "GET".into(),
                route: "/a/{x}".into(),
                path: "/a/1".into(),
                status: Some(200),
            }),
            ..Default::default()
        },
    );
    let trace = root.trace.clone().unwrap();
    let child = traced(
        "child",
        101,
        TraceOrigin {
            context: Some(trace.handler_context()),
            queued_ms: Some(100),
            hop: Some(lambent_core::Hop::Queue {
                queue: "q".into(),
                messages: 2,
                links: vec![trace.handler_context(), trace_context('a', 'b')],
            }),
            ..Default::default()
        },
    );
    let mut elsewhere = child.clone();
    (elsewhere.id, elsewhere.namespace) = ("other-ns".into(), "other".into());
    let other_trace = traced(
        "other-trace",
        102,
        TraceOrigin {
            context: Some(trace_context('a', 'b')),
            ..Default::default()
        },
    );
    let untraced = activation("untraced", 103, ActivationStatus::Success);
    let batch = [root, child, elsewhere, other_trace, untraced];
    store.insert_activations(&batch).await.unwrap();
    for a in &batch {
        let got = store.get_activation(&a.namespace, &a.id).await.unwrap();
        assert_eq!(got.as_ref(), Some(a));
    }
    let of = |ns: &str, trace_id: String| ActivationQuery {
        namespace: ns.into(),
        trace_id: Some(trace_id),
        limit: 100,
        ..Default::default()
    };
    let found = store
        .query_activations(&of("default", trace.trace_id.to_string()))
        .await
        .unwrap();
    let ids: Vec<&str> = found.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["child", "root"]);
    assert_eq!(
        found[0].trace.as_ref().unwrap().parent_span_id,
        Some(trace.handler_context().parent)
    );
    assert_eq!(found[0].trace.as_ref().unwrap().queued_ms, Some(100));
    // Another namespace's activations of the same trace stay there.
    let there = store
        .query_activations(&of("other", trace.trace_id.to_string()))
        .await
        .unwrap();
    assert_eq!(there.len(), 1);
    assert_eq!(there[0].id, "other-ns");
    let none = store
        .query_activations(&of("default", "f".repeat(32)))
        .await
        .unwrap();
    assert!(none.is_empty());
}

pub async fn events_carry_their_trace_context<S: ContractStore>(store: Arc<S>) {
    let mut traced = event("traced", 10);
    traced.trace = Some(trace_context('c', 'd'));
    let mut dest = event("traced.dest", 20);
    dest.trace = Some(trace_context('e', 'f'));
    store
        .write_events(vec![
            EventWrite::Enqueue(traced.clone()),
            EventWrite::Enqueue(event("plain", 10)),
        ])
        .await
        .unwrap();
    let got = store.claim_events(&claim(10, 10, 100)).await.unwrap();
    let by_id = |id: &str| got.iter().find(|e| e.id == id).unwrap().trace.clone();
    assert_eq!(by_id("traced"), traced.trace);
    assert_eq!(by_id("plain"), None);
    let complete = EventWrite::Complete {
        id: "traced".into(),
        claim: 1,
        then: Some(dest.clone()),
    };
    assert_eq!(store.write_events(vec![complete]).await.unwrap(), [true]);
    let got = store.claim_events(&claim(20, 10, 200)).await.unwrap();
    assert_eq!(ids(&got), ["traced.dest"]);
    assert_eq!(got[0].trace, dest.trace);
    // A topic's delivery keeps its hop beside the context, with or without one.
    let topic = lambent_core::Hop::Topic {
        topic: "orders".into(),
    };
    let mut delivery = event("delivery", 30);
    (delivery.trace, delivery.hop) = (Some(trace_context('7', '8')), Some(topic.clone()));
    let mut untraced = event("untraced-delivery", 30);
    untraced.hop = Some(topic.clone());
    store
        .write_events(vec![
            EventWrite::Enqueue(delivery.clone()),
            EventWrite::Enqueue(untraced),
        ])
        .await
        .unwrap();
    let got = store.claim_events(&claim(30, 10, 300)).await.unwrap();
    let of = |id: &str| got.iter().find(|e| e.id == id).unwrap();
    assert_eq!(of("delivery").trace, delivery.trace);
    assert_eq!(of("delivery").hop.as_ref(), Some(&topic));
    assert_eq!(of("untraced-delivery").trace, None);
    assert_eq!(of("untraced-delivery").hop.as_ref(), Some(&topic));
}

fn api_key(ns: &str, id: &str, digest: &str, role: Role, expires_ms: Option<i64>) -> ApiKey {
    ApiKey {
        key_id: id.into(),
        namespace: ns.into(),
        role,
        key_sha256: digest.into(),
        created_ms: 10,
        expires_ms,
    }
}

pub async fn api_keys_carry_a_namespace_role_and_expiry_and_rotate<S: ContractStore>(
    store: Arc<S>,
) {
    // A configured key: an owner key of its namespace, which now exists.
    store.add_api_key("default", "d1").await.unwrap();
    let got = store.api_key("d1").await.unwrap().unwrap();
    assert_eq!(
        (got.namespace.as_str(), got.role, got.key_id.as_str()),
        ("default", Role::Owner, "lk-d1")
    );
    assert!(store.get_namespace("default").await.unwrap().is_some());
    assert_eq!(store.api_key("nope").await.unwrap(), None);

    let viewer = api_key("team-a", "lk-v", "v1", Role::Viewer, Some(500));
    store.put_api_key(&viewer).await.unwrap();
    assert_eq!(store.api_key("v1").await.unwrap(), Some(viewer.clone()));
    assert!(viewer.valid_at(499) && !viewer.valid_at(500));

    // Rotation: the new secret has the key's expiry, the old one the grace's (if sooner).
    let new = api_key("team-a", "lk-v", "v2", Role::Viewer, Some(500));
    assert!(store.rotate_api_key(&new, 200).await.unwrap());
    assert_eq!(
        store.api_key("v1").await.unwrap().unwrap().expires_ms,
        Some(200)
    );
    assert_eq!(store.api_key("v2").await.unwrap(), Some(new));
    let ghost = api_key("team-a", "lk-ghost", "g1", Role::Owner, None);
    assert!(!store.rotate_api_key(&ghost, 200).await.unwrap());
    assert_eq!(store.api_key("g1").await.unwrap(), None);
    // A rotation never lengthens what a secret had left.
    let third = api_key("team-a", "lk-v", "v3", Role::Viewer, Some(500));
    assert!(store.rotate_api_key(&third, 900).await.unwrap());
    assert_eq!(
        store.api_key("v1").await.unwrap().unwrap().expires_ms,
        Some(200)
    );
    assert_eq!(
        store.api_key("v2").await.unwrap().unwrap().expires_ms,
        Some(500)
    );

    let listed = store.list_api_keys("team-a").await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|k| k.key_id == "lk-v"));
    // Another namespace cannot delete it; its own can, every secret at once.
    assert!(!store.delete_api_key("default", "lk-v").await.unwrap());
    assert!(store.delete_api_key("team-a", "lk-v").await.unwrap());
    assert!(store.list_api_keys("team-a").await.unwrap().is_empty());
    assert_eq!(store.api_key("v3").await.unwrap(), None);
    assert_eq!(store.list_api_keys("default").await.unwrap().len(), 1);
}

fn tenant(name: &str, concurrency: Option<u32>) -> Namespace {
    Namespace {
        name: name.into(),
        settings: NamespaceSettings {
            concurrency,
            monthly_budget_usd: Some(12.5),
            budget_hard: true,
            ..Default::default()
        },
        created_ms: 1,
        updated_ms: 1,
    }
}

pub async fn namespaces_are_created_once_updated_and_listed<S: ContractStore>(store: Arc<S>) {
    assert!(store
        .create_namespace(&tenant("team-a", Some(5)))
        .await
        .unwrap());
    assert!(!store
        .create_namespace(&tenant("team-a", Some(9)))
        .await
        .unwrap());
    assert_eq!(
        store.get_namespace("team-a").await.unwrap(),
        Some(tenant("team-a", Some(5)))
    );
    let mut changed = tenant("team-a", None);
    changed.updated_ms = 7;
    assert!(store.update_namespace(&changed).await.unwrap());
    assert!(!store
        .update_namespace(&tenant("ghost", None))
        .await
        .unwrap());
    assert_eq!(store.get_namespace("team-a").await.unwrap(), Some(changed));
    store
        .create_namespace(&tenant("team-b", None))
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_namespaces()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    // `default` exists from the start.
    assert_eq!(names, ["default", "team-a", "team-b"]);
    assert_eq!(store.get_namespace("ghost").await.unwrap(), None);
}

/// One of everything a namespace can hold, in `ns` (bucket and table names are global).
async fn fill_namespace<S: ContractStore>(store: &S, ns: &str) {
    store.create_namespace(&tenant(ns, None)).await.unwrap();
    store.add_api_key(ns, &format!("{ns}-key")).await.unwrap();
    let mut f = function("f", 1);
    f.namespace = ns.into();
    store.put_function(&f, 0).await.unwrap();
    store.publish_version(&f, "v1").await.unwrap();
    let mut a = activation(&format!("{ns}-act"), 1_000, ActivationStatus::Success);
    a.namespace = ns.into();
    store.insert_activations(&[a]).await.unwrap();
    let mut q = queue("q", None);
    q.namespace = ns.into();
    store.create_queue(&q).await.unwrap();
    store
        .send(ns, "q", &[message(&format!("{ns}-m1"), 0)])
        .await
        .unwrap();
    store
        .create_topic(&Topic {
            namespace: ns.into(),
            name: "t".into(),
            created_ms: 1,
        })
        .await
        .unwrap();
    let mut r = route(&format!("{ns}-r"), &format!("/{ns}"), 1);
    r.namespace = ns.into();
    store.put_route(&r).await.unwrap();
    let mut s = schedule(Some(5_000));
    s.namespace = ns.into();
    store.put_schedule(&s, false).await.unwrap();
    let b = format!("{ns}-bucket");
    store.create_bucket(&bucket(ns, &b)).await.unwrap();
    store
        .put_object(
            &object(&b, "k", "e", &format!("{ns}-data")),
            &WriteIf::Always,
        )
        .await
        .unwrap();
    let upload = Upload {
        id: format!("{ns}-upload"),
        bucket: b.clone(),
        key: "unfinished".into(),
        initiated_ms: 1,
        attrs: ObjectAttrs::default(),
    };
    assert!(store.create_upload(&upload).await.unwrap());
    store
        .put_part(&Part {
            upload_id: upload.id.clone(),
            number: 1,
            size: 5,
            etag: "\"p\"".into(),
            checksums: Default::default(),
            locator: format!("{ns}-part"),
            last_modified_ms: 2,
        })
        .await
        .unwrap();
    let mut key = access_key(ns, "secret");
    key.access_key_id = format!("AKID{ns}");
    store.put_access_key(&key).await.unwrap();
    store.append_audit(&[audit(ns, 5, "PUT")]).await.unwrap();
    let claim = host(&format!("{ns}.example"), ns, 6);
    assert_eq!(store.claim_host(&claim).await.unwrap(), Claimed::New);
}

pub async fn a_purge_leaves_nothing_of_the_namespace_and_all_of_the_others<S: ContractStore>(
    store: Arc<S>,
) {
    fill_namespace(store.as_ref(), "gone").await;
    fill_namespace(store.as_ref(), "kept").await;
    let kinds = |found: Vec<(String, u64)>| found.into_iter().map(|(t, _)| t).collect::<Vec<_>>();
    let before = kinds(store.namespace_contents("gone").await.unwrap());
    for table in [
        "functions",
        "queues",
        "queue_messages",
        "topics",
        "routes",
        "schedules",
        "buckets",
    ] {
        assert!(before.iter().any(|t| t == table), "{table} in {before:?}");
    }
    // Records (activations, keys, audit) do not make a namespace non-empty.
    assert!(!before.iter().any(|t| RECORD_TABLES.contains(&t.as_str())));
    let kept_before = store.namespace_contents("kept").await.unwrap();

    // The purge says which object data its objects and parts referred to (the engine
    // deletes it), and nothing of the other namespace's.
    let purged = store.purge_namespace("gone").await.unwrap();
    assert!(purged.existed);
    let mut data = purged.object_data;
    data.sort();
    assert_eq!(data, ["gone-data", "gone-part"]);
    assert!(store.namespace_contents("gone").await.unwrap().is_empty());
    assert_eq!(
        store
            .get_upload("gone-bucket", "gone-upload")
            .await
            .unwrap(),
        None
    );
    let mut referenced = store.referenced_data().await.unwrap();
    referenced.sort();
    assert_eq!(referenced, ["kept-data", "kept-part"]);
    assert_eq!(store.get_namespace("gone").await.unwrap(), None);
    assert_eq!(store.api_key("gone-key").await.unwrap(), None);
    assert_eq!(store.access_key("AKIDgone").await.unwrap(), None);
    assert_eq!(
        store.get_activation("gone", "gone-act").await.unwrap(),
        None
    );
    assert!(store
        .get_object("gone-bucket", "k")
        .await
        .unwrap()
        .is_none());
    assert!(store.get_bucket("gone-bucket").await.unwrap().is_none());
    assert!(store.list_functions("gone").await.unwrap().is_empty());
    assert!(!store
        .all_versions()
        .await
        .unwrap()
        .iter()
        .any(|v| v.function.namespace == "gone"));
    let audit_left = store
        .query_audit(&AuditQuery {
            namespace: Some("gone".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(audit_left.is_empty());
    assert!(!store
        .all_routes()
        .await
        .unwrap()
        .iter()
        .any(|r| r.namespace == "gone"));
    // Its host names are released; the other's are kept.
    let hosts = store.all_hosts().await.unwrap();
    assert_eq!(
        hosts.iter().map(|h| h.host.as_str()).collect::<Vec<_>>(),
        ["kept.example"]
    );
    // A name freed is free: a new bucket of that name in another namespace works.
    assert!(matches!(
        store
            .create_bucket(&bucket("kept", "gone-bucket"))
            .await
            .unwrap(),
        BucketCreated::Created
    ));
    store.delete_bucket("gone-bucket").await.unwrap();

    assert_eq!(store.namespace_contents("kept").await.unwrap(), kept_before);
    assert!(store.api_key("kept-key").await.unwrap().is_some());
    assert!(store
        .get_activation("kept", "kept-act")
        .await
        .unwrap()
        .is_some());
    assert!(store
        .get_object("kept-bucket", "k")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.purge_namespace("gone").await.unwrap(),
        Purged::default()
    );
}

/// The storage quota's count: objects, parts of uploads in progress, items and message bodies
/// (in UTF-8 bytes) of one namespace, following writes and deletes, nothing of another's.
pub async fn storage_use_counts_objects_parts_items_and_message_bytes_per_namespace<
    S: ContractStore,
>(
    store: Arc<S>,
) {
    let empty = store.storage_use("q-a").await.unwrap();
    assert_eq!((empty, empty.total()), (StorageUse::default(), 0));
    for ns in ["q-a", "q-b"] {
        store
            .create_bucket(&bucket(ns, &format!("{ns}-b")))
            .await
            .unwrap();
        let mut q = queue("q", None);
        q.namespace = ns.into();
        store.create_queue(&q).await.unwrap();
        store.create_table(&table(ns, "t", false)).await.unwrap();
    }
    let mut big = object("q-a-b", "big", "e1", "l1");
    big.size = 1000;
    store.put_object(&big, &WriteIf::Always).await.unwrap();
    store
        .put_object(&object("q-a-b", "small", "e2", "l2"), &WriteIf::Always)
        .await
        .unwrap();
    store
        .put_object(&object("q-b-b", "other", "e3", "l3"), &WriteIf::Always)
        .await
        .unwrap();
    store
        .create_upload(&Upload {
            id: "q-u".into(),
            bucket: "q-a-b".into(),
            key: "movie".into(),
            initiated_ms: 1,
            attrs: ObjectAttrs::default(),
        })
        .await
        .unwrap();
    store
        .put_part(&Part {
            upload_id: "q-u".into(),
            number: 1,
            size: 50,
            etag: "\"p\"".into(),
            checksums: Default::default(),
            locator: "p1".into(),
            last_modified_ms: 2,
        })
        .await
        .unwrap();
    let mut m = message("q-m1", 0);
    m.body = "é".repeat(10); // 20 bytes of UTF-8
    store.send("q-a", "q", &[m]).await.unwrap();
    store.send("q-b", "q", &[message("q-m2", 0)]).await.unwrap();
    let t = table("q-a", "t", false);
    let p = Av::S("p".into());
    write(
        &*store,
        item_key(&t, key(&p, None)),
        Change::Put(new_item(
            r#"{"p":{"S":"p"},"v":{"S":"0123456789"}}"#,
            &p,
            vec![],
        )),
    )
    .await;
    let used = store.storage_use("q-a").await.unwrap();
    assert_eq!(
        used,
        StorageUse {
            objects: 1003,
            parts: 50,
            items: 38,
            messages: 20,
        }
    );
    assert_eq!(used.total(), 1111);

    // Deletes and replacements are counted at once.
    store.delete_object("q-a-b", "big").await.unwrap();
    store.abort_upload("q-u").await.unwrap();
    store.purge("q-a", "q").await.unwrap();
    write(&*store, item_key(&t, key(&p, None)), Change::Delete).await;
    assert_eq!(
        store.storage_use("q-a").await.unwrap(),
        StorageUse {
            objects: 3,
            ..Default::default()
        }
    );
    let other = store.storage_use("q-b").await.unwrap();
    assert_eq!((other.objects, other.messages), (3, 12));
}

fn audit(ns: &str, at_ms: i64, method: &str) -> AuditEntry {
    AuditEntry {
        namespace: ns.into(),
        at_ms,
        key_id: "lk-1".into(),
        role: Role::Deployer,
        method: method.into(),
        action: "/v1/functions/f".into(),
        target: "f".into(),
        status: 201,
        client: "127.0.0.1:5000".into(),
    }
}

pub async fn audit_entries_are_kept_per_namespace_newest_first<S: ContractStore>(store: Arc<S>) {
    store
        .append_audit(&[
            audit("a", 10, "PUT"),
            audit("a", 20, "DELETE"),
            audit("b", 15, "POST"),
        ])
        .await
        .unwrap();
    store.append_audit(&[]).await.unwrap();
    let q = |ns: Option<&str>, since_ms: Option<i64>, limit: usize| AuditQuery {
        namespace: ns.map(str::to_string),
        since_ms,
        limit,
    };
    let a = store.query_audit(&q(Some("a"), None, 10)).await.unwrap();
    assert_eq!(a, [audit("a", 20, "DELETE"), audit("a", 10, "PUT")]);
    let recent = store
        .query_audit(&q(Some("a"), Some(11), 10))
        .await
        .unwrap();
    assert_eq!(recent, [audit("a", 20, "DELETE")]);
    let all = store.query_audit(&q(None, None, 2)).await.unwrap();
    assert_eq!(all, [audit("a", 20, "DELETE"), audit("b", 15, "POST")]);
}

pub async fn leases_fence_stale_workers<S: ContractStore>(store: Arc<S>) {
    let applied = store
        .write_events(vec![
            EventWrite::Enqueue(event("a", 10)),
            EventWrite::Enqueue(event("b", 50)),
        ])
        .await
        .unwrap();
    assert_eq!(applied, [true, true]);
    assert_eq!(store.next_due_ms().await.unwrap(), Some(10));
    let claimed = store.claim_events(&claim(20, 10, 1_000)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].id.as_str(), claimed[0].claims), ("a", 1));
    assert_eq!(claimed[0].due_ms, 1_000);
    // Leased: not due again before the lease expires; then taken over under claim 2.
    let b = store.claim_events(&claim(999, 10, 2_000)).await.unwrap();
    assert_eq!(ids(&b), ["b"]);
    let again = store.claim_events(&claim(1_000, 10, 3_000)).await.unwrap();
    assert_eq!((again[0].id.as_str(), again[0].claims), ("a", 2));
    // The first worker's late "done" is fenced off; the second's extension applies.
    let stale = EventWrite::Complete {
        id: "a".into(),
        claim: 1,
        then: None,
    };
    assert_eq!(store.write_events(vec![stale]).await.unwrap(), [false]);
    store.extend_lease("a", 1, 9_000).await.unwrap();
    store.extend_lease("a", 2, 4_000).await.unwrap();
    assert_eq!(store.next_due_ms().await.unwrap(), Some(2_000));
    assert_eq!(store.release_leases(5, &[]).await.unwrap(), 2);
    assert_eq!(store.next_due_ms().await.unwrap(), Some(5));
    let done = EventWrite::Complete {
        id: "a".into(),
        claim: 2,
        then: None,
    };
    // Released: no longer held, so a completion under the old claim does not apply.
    assert_eq!(store.write_events(vec![done]).await.unwrap(), [false]);
    assert_eq!(store.pending_events(None).await.unwrap(), 2);
    assert_eq!(store.pending_events(Some("default")).await.unwrap(), 2);
    assert_eq!(store.pending_events(Some("other")).await.unwrap(), 0);
}

fn schedule(next_fire_ms: Option<i64>) -> StoredSchedule {
    StoredSchedule {
        namespace: "default".into(),
        name: "tick".into(),
        function: "f".into(),
        expression: "rate(1 minute)".into(),
        timezone: "UTC".into(),
        next_fire_ms,
        created_ms: 1,
        input: None,
    }
}

pub async fn a_fire_applies_once<S: ContractStore>(store: Arc<S>) {
    let s = schedule(Some(100));
    assert!(store.put_schedule(&s, false).await.unwrap());
    assert!(!store.put_schedule(&s, false).await.unwrap());
    let fire = |id: &str| EventWrite::Fire {
        namespace: "default".into(),
        name: "tick".into(),
        expected_next_ms: 100,
        next_fire_ms: Some(160),
        event: event(id, 100),
    };
    let applied = store
        .write_events(vec![fire("e1"), fire("e2")])
        .await
        .unwrap();
    assert_eq!(applied, [true, false]);
    assert_eq!(store.pending_events(Some("default")).await.unwrap(), 1);
    assert_eq!(store.next_fire_ms().await.unwrap(), Some(160));
}

pub async fn a_one_shot_fire_deletes_its_schedule<S: ContractStore>(store: Arc<S>) {
    assert!(store
        .put_schedule(&schedule(Some(100)), false)
        .await
        .unwrap());
    let fire = EventWrite::Fire {
        namespace: "default".into(),
        name: "tick".into(),
        expected_next_ms: 100,
        next_fire_ms: None,
        event: event("once", 100),
    };
    assert_eq!(store.write_events(vec![fire]).await.unwrap(), [true]);
    assert_eq!(store.get_schedule("default", "tick").await.unwrap(), None);
    assert_eq!(store.next_fire_ms().await.unwrap(), None);
    assert_eq!(store.pending_events(None).await.unwrap(), 1);
}

pub async fn schedules_are_created_replaced_listed_and_deleted<S: ContractStore>(store: Arc<S>) {
    assert_eq!(store.next_fire_ms().await.unwrap(), None);
    let mut s = schedule(Some(100));
    assert!(store.put_schedule(&s, false).await.unwrap());
    s.expression = "rate(5 minutes)".into();
    s.next_fire_ms = Some(300);
    assert!(store.put_schedule(&s, true).await.unwrap());
    assert_eq!(
        store.get_schedule("default", "tick").await.unwrap(),
        Some(s.clone())
    );
    let mut fired = s.clone();
    (fired.name, fired.next_fire_ms) = ("done".into(), None);
    assert!(store.put_schedule(&fired, false).await.unwrap());
    let names: Vec<_> = store
        .list_schedules("default")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["done", "tick"]);
    assert!(store.due_schedules(299).await.unwrap().is_empty());
    assert_eq!(store.due_schedules(300).await.unwrap(), [s]);
    assert_eq!(store.next_fire_ms().await.unwrap(), Some(300));
    assert!(store.delete_schedule("default", "tick").await.unwrap());
    assert!(!store.delete_schedule("default", "tick").await.unwrap());
    assert!(store.list_schedules("other").await.unwrap().is_empty());
}

pub async fn a_schedule_keeps_its_input<S: ContractStore>(store: Arc<S>) {
    let mut s = schedule(Some(100));
    s.input = Some(r#"{"job":"report","n":[1,2]}"#.into());
    assert!(store.put_schedule(&s, false).await.unwrap());
    assert_eq!(
        store.get_schedule("default", "tick").await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(store.due_schedules(100).await.unwrap(), [s.clone()]);
    assert_eq!(store.list_schedules("default").await.unwrap(), [s.clone()]);
    // Replacing without an input clears it: the schedule sends EventBridge's event again.
    s.input = None;
    assert!(store.put_schedule(&s, true).await.unwrap());
    assert_eq!(
        store.get_schedule("default", "tick").await.unwrap(),
        Some(s.clone())
    );
    s.input = Some("\"plain string\"".into());
    assert!(store.put_schedule(&s, true).await.unwrap());
    assert_eq!(
        store.get_schedule("default", "tick").await.unwrap(),
        Some(s)
    );
}

pub async fn retries_completions_and_destinations<S: ContractStore>(store: Arc<S>) {
    store
        .write_events(vec![EventWrite::Enqueue(event("a", 10))])
        .await
        .unwrap();
    let got = store.claim_events(&claim(10, 10, 100)).await.unwrap();
    assert_eq!(got[0].claims, 1);
    let retry = |claim| EventWrite::Retry {
        id: "a".into(),
        claim,
        attempts: 1,
        due_ms: 50,
        error: "boom".into(),
    };
    assert_eq!(
        store.write_events(vec![retry(7), retry(1)]).await.unwrap(),
        [false, true]
    );
    // Released until 50, with its attempt counted.
    assert!(store
        .claim_events(&claim(49, 10, 200))
        .await
        .unwrap()
        .is_empty());
    let got = store.claim_events(&claim(50, 10, 200)).await.unwrap();
    assert_eq!((got[0].attempts, got[0].claims), (1, 2));
    let mut dest = event("a.dest", 60);
    dest.trigger = "destination".into();
    let complete = EventWrite::Complete {
        id: "a".into(),
        claim: 2,
        then: Some(dest.clone()),
    };
    // Applied once: a second completion neither applies nor enqueues again.
    assert_eq!(
        store
            .write_events(vec![complete.clone(), complete])
            .await
            .unwrap(),
        [true, false]
    );
    let got = store.claim_events(&claim(60, 10, 300)).await.unwrap();
    assert_eq!(ids(&got), ["a.dest"]);
    assert_eq!(got[0].trigger, "destination");
    assert_eq!(got[0].payload, dest.payload);
    assert_eq!(store.pending_events(None).await.unwrap(), 1);
}

pub async fn dead_letters_are_kept_and_redriven<S: ContractStore>(store: Arc<S>) {
    let mut e = event("a", 10);
    e.payload = vec![0, 159, 146, 150, 255];
    store
        .write_events(vec![EventWrite::Enqueue(e.clone())])
        .await
        .unwrap();
    let got = store.claim_events(&claim(10, 10, 100)).await.unwrap();
    let letter = |failed_ms| DeadLetter {
        id: "a".into(),
        namespace: "default".into(),
        function: "f".into(),
        payload: e.payload.clone(),
        trigger: "async".into(),
        created_ms: 1,
        failed_ms,
        attempts: 3,
        error_type: "Function.Error".into(),
        error_message: "it broke".into(),
        activation_id: Some("act".into()),
    };
    let dead = |claim| EventWrite::DeadLetter {
        claim,
        letter: letter(20),
        then: Some(event("a.failure", 20)),
    };
    assert_eq!(
        store
            .write_events(vec![dead(got[0].claims + 1), dead(got[0].claims)])
            .await
            .unwrap(),
        [false, true]
    );
    assert_eq!(
        ids(&store.claim_events(&claim(30, 10, 100)).await.unwrap()),
        ["a.failure"]
    );
    assert_eq!(
        store.get_dead_letter("default", "a").await.unwrap(),
        Some(letter(20))
    );
    assert_eq!(store.get_dead_letter("other", "a").await.unwrap(), None);
    assert_eq!(
        store.list_dead_letters("default", None, 10).await.unwrap(),
        [letter(20)]
    );
    assert_eq!(
        store
            .list_dead_letters("default", Some("f"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .list_dead_letters("default", Some("g"), 10)
        .await
        .unwrap()
        .is_empty());
    let redrive = |id: &str| EventWrite::Redrive {
        namespace: "default".into(),
        dead_letter_id: "a".into(),
        event: event(id, 40),
    };
    assert_eq!(
        store
            .write_events(vec![redrive("a.2"), redrive("a.3")])
            .await
            .unwrap(),
        [true, false]
    );
    assert_eq!(store.get_dead_letter("default", "a").await.unwrap(), None);
    let got = store.claim_events(&claim(40, 10, 100)).await.unwrap();
    assert_eq!(ids(&got), ["a.2"]);
}

pub async fn claims_record_their_owner_and_honour_affinity<S: ContractStore>(store: Arc<S>) {
    let of = |id: &str, function: &str, due_ms| QueuedEvent {
        function: function.into(),
        ..event(id, due_ms)
    };
    store
        .write_events(vec![
            EventWrite::Enqueue(of("home", "f", 100)),
            EventWrite::Enqueue(of("overdue", "g", 10)),
            EventWrite::Enqueue(of("recent", "g", 90)),
        ])
        .await
        .unwrap();
    let home = vec![crate::events::function_key("default", "f")];
    let affine = |now_ms, owner| Claim {
        now_ms,
        limit: 10,
        lease_until_ms: 10_000,
        owner,
        home: Some(&home),
        spill_after_ms: 50,
    };
    // At 100: its own function, and g's event due for 90 ms (over the 50 ms spill delay), not
    // g's event due for only 10 ms.
    let got = store.claim_events(&affine(100, "n1")).await.unwrap();
    assert_eq!(ids(&got), ["overdue", "home"]);
    assert!(store
        .claim_events(&affine(120, "n1"))
        .await
        .unwrap()
        .is_empty());
    let got = store.claim_events(&affine(140, "n2")).await.unwrap();
    assert_eq!(ids(&got), ["recent"]);
    // An empty home takes only overdue events.
    let none: Vec<String> = Vec::new();
    store
        .write_events(vec![EventWrite::Enqueue(of("late", "h", 200))])
        .await
        .unwrap();
    let idle = Claim {
        home: Some(&none),
        ..affine(240, "n3")
    };
    assert!(store.claim_events(&idle).await.unwrap().is_empty());
    let idle = Claim {
        home: Some(&none),
        ..affine(250, "n3")
    };
    assert_eq!(ids(&store.claim_events(&idle).await.unwrap()), ["late"]);
    // The leases are the owners' own.
    assert_eq!(store.release_leases_of(0, "n1").await.unwrap(), 2);
    assert_eq!(store.release_leases_of(0, "n2").await.unwrap(), 1);
    assert_eq!(store.release_leases_of(0, "n2").await.unwrap(), 0);
}

pub async fn release_leases_spares_live_owners<S: ContractStore>(store: Arc<S>) {
    store
        .write_events(
            (0..4)
                .map(|i| EventWrite::Enqueue(event(&format!("e{i}"), i)))
                .collect(),
        )
        .await
        .unwrap();
    for (i, owner) in ["n1", "n2", "n3"].into_iter().enumerate() {
        let c = Claim {
            owner,
            ..claim(i as i64, 1, 1_000)
        };
        assert_eq!(store.claim_events(&c).await.unwrap().len(), 1);
    }
    let live = ["n1".to_string(), "n3".to_string()];
    assert_eq!(store.release_leases(500, &live).await.unwrap(), 1);
    assert_eq!(store.release_leases(500, &live).await.unwrap(), 0);
    // n2's event is due now (500), the unleased one keeps its due time, n1's and n3's stay leased.
    assert_eq!(store.next_due_ms().await.unwrap(), Some(3));
    let got = store.claim_events(&claim(500, 10, 2_000)).await.unwrap();
    assert_eq!(ids(&got), ["e3", "e1"]);
    assert_eq!(got[1].claims, 2);
    // Without live owners, every lease goes (the embedded node at start-up).
    assert_eq!(store.release_leases(600, &[]).await.unwrap(), 4);
}

pub async fn release_leases_of_one_owner<S: ContractStore>(store: Arc<S>) {
    store
        .write_events(vec![
            EventWrite::Enqueue(event("a", 10)),
            EventWrite::Enqueue(event("b", 20)),
        ])
        .await
        .unwrap();
    let a = Claim {
        owner: "n1",
        ..claim(10, 1, 5_000)
    };
    let a = store.claim_events(&a).await.unwrap();
    let b = Claim {
        owner: "n2",
        ..claim(20, 1, 6_000)
    };
    store.claim_events(&b).await.unwrap();
    assert_eq!(store.release_leases_of(30, "n1").await.unwrap(), 1);
    assert_eq!(store.release_leases_of(30, "n1").await.unwrap(), 0);
    assert_eq!(store.next_due_ms().await.unwrap(), Some(30));
    // Released, the old claim no longer completes it; n2 still holds its own.
    let done = EventWrite::Complete {
        id: "a".into(),
        claim: a[0].claims,
        then: None,
    };
    assert_eq!(store.write_events(vec![done]).await.unwrap(), [false]);
    let got = store.claim_events(&claim(40, 10, 7_000)).await.unwrap();
    assert_eq!(ids(&got), ["a"]);
}

fn access_key(ns: &str, secret: &str) -> AccessKey {
    AccessKey {
        namespace: ns.into(),
        access_key_id: "AKIDONE".into(),
        secret_access_key: secret.into(),
        created_ms: 1,
        role: Role::Owner,
        expires_ms: None,
        previous_secret: None,
    }
}

pub async fn access_keys_belong_to_one_namespace<S: ContractStore>(store: Arc<S>) {
    store
        .put_access_key(&access_key("default", "s1"))
        .await
        .unwrap();
    store
        .put_access_key(&access_key("default", "s2"))
        .await
        .unwrap();
    assert!(matches!(
        store.put_access_key(&access_key("other", "s3")).await,
        Err(StoreError::Changed(_))
    ));
    let got = store.access_key("AKIDONE").await.unwrap().unwrap();
    assert_eq!(
        (got.namespace.as_str(), got.secret_access_key.as_str()),
        ("default", "s2")
    );
    assert_eq!(store.list_access_keys("default").await.unwrap().len(), 1);
    // A rotation keeps the old secret beside the new one until its grace ends.
    let rotated = AccessKey {
        previous_secret: Some(("s2".into(), 5_000)),
        ..access_key("default", "s3")
    };
    store.put_access_key(&rotated).await.unwrap();
    let got = store.access_key("AKIDONE").await.unwrap().unwrap();
    assert_eq!(got, rotated);
    assert_eq!(got.secrets_at(4_999).collect::<Vec<_>>(), ["s3", "s2"]);
    assert_eq!(got.secrets_at(5_000).collect::<Vec<_>>(), ["s3"]);
    assert_eq!(store.list_access_keys("default").await.unwrap(), [rotated]);
    assert!(!store.delete_access_key("other", "AKIDONE").await.unwrap());
    assert!(store.delete_access_key("default", "AKIDONE").await.unwrap());
    assert_eq!(store.access_key("AKIDONE").await.unwrap(), None);
}

pub async fn versions_number_up_and_an_unchanged_revision_is_not_republished<S: ContractStore>(
    store: Arc<S>,
) {
    let v1 = store
        .publish_version(&function("f", 3), "first")
        .await
        .unwrap();
    let again = store
        .publish_version(&function("f", 3), "again")
        .await
        .unwrap();
    let v2 = store.publish_version(&function("f", 5), "").await.unwrap();
    assert_eq!((v1.version, again.version, v2.version), (1, 1, 2));
    assert_eq!(again.description, "first");
    let all = store.all_versions().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].function, function("f", 5));
    let mut changed = v2.clone();
    changed.function.config.provisioned_concurrency = 2;
    assert!(store.put_version_snapshot(&changed).await.unwrap());
    assert_eq!(store.all_versions().await.unwrap()[1], changed);
    assert!(store.delete_version("default", "f", 2).await.unwrap());
    assert!(!store.delete_version("default", "f", 2).await.unwrap());
    assert!(!store.put_version_snapshot(&changed).await.unwrap());
    let v3 = store.publish_version(&function("f", 7), "").await.unwrap();
    assert_eq!(v3.version, 3, "numbers are not reused");
    store
        .delete_versions_and_aliases("default", "f")
        .await
        .unwrap();
    assert!(store.all_versions().await.unwrap().is_empty());
    assert!(store.all_functions().await.unwrap().is_empty());
}

pub async fn aliases_are_created_once_and_updated_by_revision<S: ContractStore>(store: Arc<S>) {
    let mut alias = Alias {
        namespace: "default".into(),
        function: "f".into(),
        name: "live".into(),
        function_version: "1".into(),
        description: String::new(),
        additional_weights: [("2".to_string(), 0.1)].into(),
        revision_id: "r1".into(),
        updated_ms: 1,
    };
    store.put_alias(&alias, None).await.unwrap();
    assert!(matches!(
        store.put_alias(&alias, None).await,
        Err(StoreError::Changed(_))
    ));
    alias.revision_id = "r2".into();
    assert!(matches!(
        store.put_alias(&alias, Some("stale")).await,
        Err(StoreError::Changed(_))
    ));
    store.put_alias(&alias, Some("r1")).await.unwrap();
    assert_eq!(store.all_aliases().await.unwrap(), vec![alias.clone()]);
    assert!(store.delete_alias("default", "f", "live").await.unwrap());
    assert!(!store.delete_alias("default", "f", "live").await.unwrap());
    assert!(matches!(
        store.put_alias(&alias, Some("r2")).await,
        Err(StoreError::Changed(_))
    ));
}

fn route(id: &str, path: &str, created_ms: i64) -> Route {
    Route {
        created_ms,
        ..route_in("default", id, path)
    }
}

/// A `GET` route of namespace `ns` to function `f`, created at 1 ms.
pub fn route_in(ns: &str, id: &str, path: &str) -> Route {
    RouteSpec {
        method: "GET".into(),
        path: path.into(),
        function: "f".into(),
        ..Default::default()
    }
    .resolve(id.into(), ns, 1)
    .unwrap()
}

/// What a backend's path-space migration test stores in the schema before the migration, with
/// host `c.example` claimed by namespace `c`: two routes of `a` in the shared space and one of
/// `c` (in its own space once migrated) with the same shape as `a1`.
pub fn routes_before_path_spaces() -> [Route; 3] {
    [
        route_in("a", "a1", "/u/{id}/f/{p+}"),
        route_in("a", "a2", "/"),
        route_in("c", "c1", "/u/{id}/f/{p+}"),
    ]
}

/// After the path-space migration over [`routes_before_path_spaces`], the store refuses what
/// the route table would: another namespace's route of the same shape in a space already
/// holding one, and stores one in `c`'s own space that the shared space holds.
pub async fn migrated_routes_refuse_what_the_route_table_would<S: RouteStore>(store: &S) {
    let taken = |ns: &str| RoutePut::Taken {
        namespace: ns.into(),
    };
    for (r, by) in [
        (route_in("b", "b1", "/u/{x}/f/{q+}"), "a"),
        (route_in("b", "b2", "/"), "a"),
        (route_in("c", "c2", "/u/{z}/f/{w+}"), "c"),
    ] {
        assert_eq!(store.put_route(&r).await.unwrap(), taken(by), "{}", r.id);
    }
    let own = route_in("c", "c3", "/");
    assert_eq!(store.put_route(&own).await.unwrap(), RoutePut::Stored);
}

pub async fn route_keys_stay_unique<S: ContractStore>(store: Arc<S>) {
    let stored = RoutePut::Stored;
    assert_eq!(
        store.put_route(&route("r1", "/a/{id}", 1)).await.unwrap(),
        stored
    );
    assert_eq!(
        store.put_route(&route("r2", "/b", 2)).await.unwrap(),
        stored
    );
    let taken = RoutePut::Taken {
        namespace: "default".into(),
    };
    assert_eq!(store.put_route(&route("r3", "/b", 3)).await.unwrap(), taken);
    let all = store.all_routes().await.unwrap();
    assert_eq!(all, [route("r1", "/a/{id}", 1), route("r2", "/b", 2)]);
    // Replacing by id moves the route.
    assert_eq!(
        store.put_route(&route("r2", "/c", 2)).await.unwrap(),
        stored
    );
    assert_eq!(store.all_routes().await.unwrap()[1], route("r2", "/c", 2));
    assert!(store.delete_route("r1").await.unwrap());
    assert!(!store.delete_route("r1").await.unwrap());
    assert_eq!(store.all_routes().await.unwrap().len(), 1);
    // A namespace with a host name stores the same key in its own path space.
    let other = |id: &str, path: &str, at: i64| Route {
        namespace: "other".into(),
        ..route(id, path, at)
    };
    let claim = host("api.other.example", "other", 4);
    assert_eq!(store.claim_host(&claim).await.unwrap(), Claimed::New);
    assert_eq!(
        store.put_route(&other("r4", "/c", 5)).await.unwrap(),
        stored
    );
    assert_eq!(store.all_routes().await.unwrap().len(), 2);
}

/// Two namespaces sharing the path space cannot both store a route requests cannot tell apart
/// (the same method and path, or the same shape: `/a/{x}` and `/a/{y}`), whichever stores it
/// first: the second learns whose it is. Releasing the last host name of a namespace whose
/// route overlaps one in the shared space is refused, and changes nothing.
pub async fn two_namespaces_never_share_a_route<S: ContractStore>(store: Arc<S>) {
    let of = |ns: &str, id: &str, path: &str, at: i64| Route {
        namespace: ns.into(),
        ..route(id, path, at)
    };
    let put = |r: Route| {
        let store = store.clone();
        async move { store.put_route(&r).await.unwrap() }
    };
    let taken_by_a = RoutePut::Taken {
        namespace: "a".into(),
    };
    assert_eq!(put(of("a", "a1", "/x", 1)).await, RoutePut::Stored);
    assert_eq!(put(of("a", "a2", "/u/{id}", 2)).await, RoutePut::Stored);
    assert_eq!(put(of("b", "b1", "/x", 3)).await, taken_by_a);
    assert_eq!(put(of("b", "b2", "/u/{name}", 4)).await, taken_by_a);
    // Another method, or another shape, is another route.
    let mut post = of("b", "b3", "/x", 5);
    post.method = "POST".into();
    assert_eq!(put(post).await, RoutePut::Stored);
    assert_eq!(
        put(of("b", "b4", "/u/{name}/more", 6)).await,
        RoutePut::Stored
    );
    // Replacing a route by id onto another's is refused too.
    assert_eq!(put(of("b", "b4", "/u/{x}", 6)).await, taken_by_a);
    let ids: Vec<String> = store
        .all_routes()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["a1", "a2", "b3", "b4"]);

    // With a host name, b has a path space of its own.
    let claim = host("api.b.example", "b", 7);
    assert_eq!(store.claim_host(&claim).await.unwrap(), Claimed::New);
    assert_eq!(put(of("b", "b1", "/x", 8)).await, RoutePut::Stored);
    assert_eq!(
        put(of("b", "b5", "/x", 9)).await,
        RoutePut::Taken {
            namespace: "b".into()
        }
    );
    // Its last host name cannot go while its route overlaps a's in the shared space.
    assert_eq!(
        store.release_host("b", "api.b.example").await.unwrap(),
        Released::Overlaps
    );
    assert_eq!(store.all_hosts().await.unwrap(), [claim]);
    assert_eq!(
        store.release_host("a", "api.b.example").await.unwrap(),
        Released::NotHeld
    );
    assert!(store.delete_route("b1").await.unwrap());
    assert_eq!(
        store.release_host("b", "api.b.example").await.unwrap(),
        Released::Released
    );
    assert!(store.all_hosts().await.unwrap().is_empty());
    // Back in the shared space, b's routes are checked against a's again.
    assert_eq!(put(of("b", "b1", "/x", 10)).await, taken_by_a);
}

fn host(name: &str, ns: &str, created_ms: i64) -> HostClaim {
    HostClaim {
        host: name.into(),
        namespace: ns.into(),
        created_ms,
    }
}

pub async fn hosts_are_claimed_by_one_namespace_and_released<S: ContractStore>(store: Arc<S>) {
    let a = host("api.a.example", "a", 1);
    assert_eq!(store.claim_host(&a).await.unwrap(), Claimed::New);
    assert_eq!(
        store
            .claim_host(&host("api.a.example", "a", 2))
            .await
            .unwrap(),
        Claimed::Held
    );
    assert_eq!(
        store
            .claim_host(&host("api.a.example", "b", 3))
            .await
            .unwrap(),
        Claimed::Taken
    );
    let b = host("api.b.example", "b", 4);
    assert_eq!(store.claim_host(&b).await.unwrap(), Claimed::New);
    assert_eq!(store.all_hosts().await.unwrap(), [a.clone(), b.clone()]);
    // Only its holder releases a host.
    let release = |ns: &'static str| {
        let store = store.clone();
        async move { store.release_host(ns, "api.a.example").await.unwrap() }
    };
    assert_eq!(release("b").await, Released::NotHeld);
    assert_eq!(release("a").await, Released::Released);
    assert_eq!(release("a").await, Released::NotHeld);
    assert_eq!(store.all_hosts().await.unwrap(), [b]);
    // Released, it is free for another namespace.
    assert_eq!(
        store
            .claim_host(&host("api.a.example", "b", 5))
            .await
            .unwrap(),
        Claimed::New
    );
}

fn message(id: &str, visible_at_ms: i64) -> NewMessage {
    NewMessage {
        id: id.into(),
        body: format!("body of {id}"),
        attributes: Attributes::new(),
        visible_at_ms,
        trace: None,
    }
}

fn receive(max: usize, now_ms: i64) -> ReceiveRequest {
    ReceiveRequest {
        namespace: "default".into(),
        queue: "q".into(),
        max,
        visibility_timeout_ms: 1000,
        now_ms,
        receipts: (0..max).map(|i| format!("r{now_ms}-{i}")).collect(),
    }
}

fn queue(name: &str, dlq: Option<&str>) -> QueueConfig {
    QueueConfig {
        namespace: "default".into(),
        name: name.into(),
        visibility_timeout_s: 1,
        delay_s: 0,
        max_receive_count: dlq.map(|_| 2),
        dead_letter_queue: dlq.map(str::to_string),
        created_ms: 0,
        ..QueueConfig::default()
    }
}

pub async fn queue_settings_retention_and_subscription_attributes<S: ContractStore>(store: Arc<S>) {
    // Every setting round-trips, through a create and an update.
    let settings = QueueConfig {
        retention_s: 60,
        max_message_bytes: 1024,
        receive_wait_s: 20,
        attributes: [(
            "Policy".to_string(),
            "{\"Version\": \"2012-10-17\"}".to_string(),
        )]
        .into(),
        tags: [("team".to_string(), "orders".to_string())].into(),
        modified_ms: 7,
        ..queue("q", None)
    };
    assert!(store.create_queue(&settings).await.unwrap());
    assert_eq!(
        store.get_queue("default", "q").await.unwrap().as_ref(),
        Some(&settings)
    );
    let changed = QueueConfig {
        retention_s: 61,
        max_message_bytes: 2048,
        receive_wait_s: 1,
        attributes: Default::default(),
        tags: [("team".to_string(), "billing".to_string())].into(),
        modified_ms: 9,
        ..settings.clone()
    };
    assert!(store.update_queue(&changed).await.unwrap());
    assert_eq!(store.list_queues("default").await.unwrap(), [changed]);
    // A message older than the retention is neither counted nor received: it is gone.
    store
        .send("default", "q", &[message("old", 0)])
        .await
        .unwrap();
    let now = lambent_core::now_ms();
    let counts = store.queue_counts("default", "q", now).await.unwrap();
    assert_eq!(counts.visible, 1);
    let later = now + 62_000;
    let counts = store.queue_counts("default", "q", later).await.unwrap();
    assert_eq!(counts, QueueCounts::default());
    assert!(store.receive(&receive(10, later)).await.unwrap().is_empty());
    assert_eq!(
        store.purge("default", "q").await.unwrap(),
        0,
        "it was deleted"
    );
    // Subscription attributes round-trip and are replaced whole.
    let topic = Topic {
        namespace: "default".into(),
        name: "t".into(),
        created_ms: 1,
    };
    store.create_topic(&topic).await.unwrap();
    let mut s = Subscription {
        id: "s".into(),
        namespace: "default".into(),
        topic: "t".into(),
        endpoint: Endpoint::Queue("q".into()),
        created_ms: 1,
        attributes: [("RawMessageDelivery".to_string(), "true".to_string())].into(),
    };
    store.subscribe(&s).await.unwrap();
    assert_eq!(
        store.subscriptions("default", "t").await.unwrap(),
        [s.clone()]
    );
    s.attributes = [(
        "FilterPolicy".to_string(),
        "{\"kind\": [\"order\"]}".to_string(),
    )]
    .into();
    assert!(store
        .set_subscription_attributes("default", "s", &s.attributes)
        .await
        .unwrap());
    assert!(!store
        .set_subscription_attributes("other", "s", &s.attributes)
        .await
        .unwrap());
    assert_eq!(store.subscriptions("default", "t").await.unwrap(), [s]);
}

pub async fn receive_hides_redrives_and_deletes<S: ContractStore>(store: Arc<S>) {
    assert!(store.create_queue(&queue("q", Some("dlq"))).await.unwrap());
    assert!(store.create_queue(&queue("dlq", None)).await.unwrap());
    assert!(!store.create_queue(&queue("q", None)).await.unwrap());
    assert_eq!(
        store.get_queue("default", "q").await.unwrap(),
        Some(queue("q", Some("dlq")))
    );
    // Settings are replaced in place (the creation time kept); an unknown queue is not made.
    let changed = QueueConfig {
        visibility_timeout_s: 9,
        delay_s: 3,
        max_receive_count: None,
        dead_letter_queue: None,
        created_ms: 12345,
        ..queue("q", None)
    };
    assert!(store.update_queue(&changed).await.unwrap());
    assert_eq!(
        store.get_queue("default", "q").await.unwrap(),
        Some(QueueConfig {
            created_ms: 0,
            ..changed
        })
    );
    assert!(store.update_queue(&queue("q", Some("dlq"))).await.unwrap());
    assert!(!store.update_queue(&queue("nope", None)).await.unwrap());
    assert_eq!(store.get_queue("default", "nope").await.unwrap(), None);
    store
        .send("default", "q", &[message("a", 0), message("b", 5000)])
        .await
        .unwrap();
    // Only `a` is visible; received, it hides for the visibility timeout.
    let got = store.receive(&receive(10, 100)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id.as_str(), got[0].receive_count), ("a", 1));
    assert_eq!(got[0].body, "body of a");
    assert!(store.receive(&receive(10, 200)).await.unwrap().is_empty());
    let counts = store.queue_counts("default", "q", 200).await.unwrap();
    assert_eq!(
        counts,
        QueueCounts {
            visible: 0,
            in_flight: 1,
            delayed: 1
        }
    );
    // Visible again after it; a second receive is the last before the DLQ.
    let got = store.receive(&receive(1, 1100)).await.unwrap();
    assert_eq!((got[0].id.as_str(), got[0].receive_count), ("a", 2));
    assert_eq!(got[0].first_receive_ms, 100);
    // The old receipt no longer deletes; the third receive redrives it.
    assert!(store
        .delete_messages("default", "q", &["r100-0".into()])
        .await
        .unwrap()
        .is_empty());
    assert!(store.receive(&receive(1, 2200)).await.unwrap().is_empty());
    let mut in_dlq = receive(1, 2200);
    in_dlq.queue = "dlq".into();
    let got = store.receive(&in_dlq).await.unwrap();
    assert_eq!((got[0].id.as_str(), got[0].receive_count), ("a", 1));
    let deleted = store
        .delete_messages("default", "dlq", &[got[0].receipt_handle.clone()])
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(store.purge("default", "q").await.unwrap(), 1);
}

pub async fn dead_letters_move_back_to_their_queue<S: ContractStore>(store: Arc<S>) {
    assert!(store.create_queue(&queue("q", Some("dlq"))).await.unwrap());
    assert!(store.create_queue(&queue("dlq", None)).await.unwrap());
    store
        .send(
            "default",
            "dlq",
            &[message("a", 0), message("b", 0), message("c", 0)],
        )
        .await
        .unwrap();
    // `a` is being looked at in the dead-letter queue: it stays there.
    let mut in_dlq = receive(1, 10);
    in_dlq.queue = "dlq".into();
    let got = store.receive(&in_dlq).await.unwrap();
    assert_eq!(got[0].id, "a");
    // Another namespace moves nothing; a move takes at most `max`, oldest first.
    assert_eq!(
        store
            .move_messages("other", "dlq", "q", 10, 20)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .move_messages("default", "dlq", "q", 1, 20)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .move_messages("default", "dlq", "q", 10, 30)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.queue_counts("default", "dlq", 40).await.unwrap(),
        QueueCounts {
            visible: 0,
            in_flight: 1,
            delayed: 0
        }
    );
    // In the source queue they are new: never received, visible now, their bodies kept.
    let got = store.receive(&receive(10, 40)).await.unwrap();
    let ids: Vec<_> = got
        .iter()
        .map(|m| (m.id.as_str(), m.receive_count, m.body.as_str(), m.sent_ms))
        .collect();
    assert_eq!(ids, [("b", 1, "body of b", 20), ("c", 1, "body of c", 30)]);
}

pub async fn messages_carry_their_senders_trace<S: ContractStore>(store: Arc<S>) {
    assert!(store.create_queue(&queue("q", Some("dlq"))).await.unwrap());
    assert!(store.create_queue(&queue("dlq", None)).await.unwrap());
    assert!(store.create_queue(&queue("fan", None)).await.unwrap());
    let traced = NewMessage {
        trace: Some(trace_context('1', '2')),
        ..message("traced", 0)
    };
    store
        .send("default", "q", &[traced.clone(), message("plain", 0)])
        .await
        .unwrap();
    let got = store.receive(&receive(10, 100)).await.unwrap();
    let trace_of = |got: &[Message], id: &str| {
        got.iter()
            .find(|m| m.id == id)
            .unwrap_or_else(|| panic!("{id} not received"))
            .trace
            .clone()
    };
    assert_eq!(trace_of(&got, "traced"), traced.trace);
    assert_eq!(trace_of(&got, "plain"), None);
    // A topic's fan-out keeps each delivery's context.
    let fanned = NewMessage {
        trace: Some(trace_context('3', '4')),
        ..message("fanned", 0)
    };
    store
        .send_to_queues(
            "default",
            &[
                ("fan".to_string(), fanned.clone()),
                ("fan".to_string(), message("fanned-plain", 0)),
            ],
        )
        .await
        .unwrap();
    let mut from_fan = receive(10, 100);
    from_fan.queue = "fan".into();
    let got = store.receive(&from_fan).await.unwrap();
    assert_eq!(trace_of(&got, "fanned"), fanned.trace);
    assert_eq!(trace_of(&got, "fanned-plain"), None);
    // Moved to the dead-letter queue, a message keeps its context.
    store.receive(&receive(10, 1100)).await.unwrap();
    assert!(store.receive(&receive(10, 2200)).await.unwrap().is_empty());
    let mut in_dlq = receive(10, 2200);
    in_dlq.queue = "dlq".into();
    let got = store.receive(&in_dlq).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(trace_of(&got, "traced"), traced.trace);
}

pub async fn queues_topics_subscriptions_and_mappings<S: ContractStore>(store: Arc<S>) {
    assert!(store.create_queue(&queue("q", None)).await.unwrap());
    assert!(store.create_queue(&queue("r", None)).await.unwrap());
    let names: Vec<_> = store
        .list_queues("default")
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, ["q", "r"]);
    // Sent in order, received oldest first; attributes round-trip.
    let mut first = message("m1", 0);
    first.attributes.insert(
        "k".into(),
        crate::queues::MessageAttribute {
            data_type: "String".into(),
            string_value: Some("v".into()),
            binary_value: None,
        },
    );
    store
        .send_to_queues(
            "default",
            &[
                ("q".into(), first.clone()),
                ("q".into(), message("m2", 0)),
                ("r".into(), message("m3", 0)),
            ],
        )
        .await
        .unwrap();
    let got = store.receive(&receive(10, 10)).await.unwrap();
    assert_eq!(
        got.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["m1", "m2"]
    );
    assert_eq!(got[0].attributes, first.attributes);
    // A visibility change makes one visible again; an unknown handle changes nothing.
    assert!(store
        .change_visibility("default", "q", &got[1].receipt_handle, 20)
        .await
        .unwrap());
    assert!(!store
        .change_visibility("default", "q", "nope", 20)
        .await
        .unwrap());
    let again = store.receive(&receive(10, 20)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id.as_str(), again[0].receive_count), ("m2", 2));
    let deleted = store
        .delete_messages(
            "default",
            "q",
            &[
                again[0].receipt_handle.clone(),
                "nope".into(),
                got[0].receipt_handle.clone(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        deleted,
        [
            again[0].receipt_handle.clone(),
            got[0].receipt_handle.clone()
        ]
    );
    // Topics and their subscriptions, oldest first.
    let topic = Topic {
        namespace: "default".into(),
        name: "t".into(),
        created_ms: 1,
    };
    assert!(store.create_topic(&topic).await.unwrap());
    assert!(!store.create_topic(&topic).await.unwrap());
    assert_eq!(store.list_topics("default").await.unwrap(), [topic]);
    let sub = |id: &str, endpoint, created_ms| Subscription {
        id: id.into(),
        namespace: "default".into(),
        topic: "t".into(),
        endpoint,
        created_ms,
        attributes: Default::default(),
    };
    let subs = [
        sub("s2", Endpoint::Queue("r".into()), 5),
        sub("s1", Endpoint::Function("f".into()), 5),
        sub("s0", Endpoint::Queue("q".into()), 9),
        sub("s3", Endpoint::Workflow("w".into()), 12),
    ];
    for s in &subs {
        store.subscribe(s).await.unwrap();
    }
    assert_eq!(store.subscriptions("default", "t").await.unwrap(), subs);
    assert!(store.unsubscribe("default", "s1").await.unwrap());
    assert!(!store.unsubscribe("default", "s1").await.unwrap());
    // Mappings, oldest first.
    let mapping = |id: &str, queue: &str, created_ms| Mapping {
        id: id.into(),
        namespace: "default".into(),
        queue: queue.into(),
        function: "f".into(),
        batch_size: 10,
        batching_window_ms: 0,
        report_batch_item_failures: true,
        enabled: true,
        created_ms,
    };
    store.create_mapping(&mapping("m-b", "r", 3)).await.unwrap();
    store.create_mapping(&mapping("m-a", "r", 3)).await.unwrap();
    store.create_mapping(&mapping("m-c", "q", 1)).await.unwrap();
    let all: Vec<_> = store
        .all_mappings()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(all, ["m-c", "m-b", "m-a"]);
    // An update replaces the settings of that mapping only, in its own namespace.
    let mut changed = mapping("m-b", "r", 3);
    changed.batch_size = 7;
    changed.enabled = false;
    assert!(store.update_mapping(&changed).await.unwrap());
    let mut elsewhere = mapping("m-a", "r", 3);
    elsewhere.namespace = "other".into();
    assert!(!store.update_mapping(&elsewhere).await.unwrap());
    assert!(!store.update_mapping(&mapping("m-z", "r", 3)).await.unwrap());
    let stored = store.all_mappings().await.unwrap();
    assert_eq!(stored[1], changed);
    assert_eq!(stored[2], mapping("m-a", "r", 3));
    assert!(store.delete_mapping("default", "m-c").await.unwrap());
    assert!(!store.delete_mapping("default", "m-c").await.unwrap());
    // Deleting a queue takes its messages, mappings and queue subscriptions with it.
    assert!(store.delete_queue("default", "r").await.unwrap());
    assert!(!store.delete_queue("default", "r").await.unwrap());
    assert!(store.all_mappings().await.unwrap().is_empty());
    assert_eq!(
        store.subscriptions("default", "t").await.unwrap(),
        [
            sub("s0", Endpoint::Queue("q".into()), 9),
            sub("s3", Endpoint::Workflow("w".into()), 12)
        ]
    );
    assert_eq!(
        store.queue_counts("default", "r", 100).await.unwrap(),
        QueueCounts::default()
    );
    assert!(store.delete_topic("default", "t").await.unwrap());
    assert!(!store.delete_topic("default", "t").await.unwrap());
    assert!(store
        .subscriptions("default", "t")
        .await
        .unwrap()
        .is_empty());
}

/// A bucket of `namespace` named `name`.
pub fn bucket(namespace: &str, name: &str) -> Bucket {
    Bucket {
        name: name.into(),
        namespace: namespace.into(),
        created_ms: 1,
        region: "us-east-1".into(),
        notification: None,
    }
}

/// An object in `bucket` whose data is one segment `locator`.
pub fn object(bucket: &str, key: &str, etag: &str, locator: &str) -> ObjectRecord {
    ObjectRecord {
        bucket: bucket.into(),
        key: key.into(),
        size: 3,
        etag: format!("\"{etag}\""),
        last_modified_ms: 5,
        attrs: ObjectAttrs {
            content_type: Some("text/plain".into()),
            metadata: [("colour".to_string(), "blue".to_string())].into(),
            ..Default::default()
        },
        data: vec![Segment {
            locator: locator.into(),
            size: 3,
        }],
    }
}

pub async fn buckets_have_global_names_and_are_deleted_only_empty<S: ContractStore>(store: Arc<S>) {
    let b = bucket("default", "photos");
    assert_eq!(
        store.create_bucket(&b).await.unwrap(),
        BucketCreated::Created
    );
    assert_eq!(
        store
            .create_bucket(&bucket("other", "photos"))
            .await
            .unwrap(),
        BucketCreated::Exists(b.clone())
    );
    store.create_bucket(&bucket("other", "logs")).await.unwrap();
    let names = |v: Vec<Bucket>| v.into_iter().map(|b| b.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.list_buckets("default").await.unwrap()),
        ["photos"]
    );
    assert_eq!(names(store.list_buckets("other").await.unwrap()), ["logs"]);
    assert!(store
        .set_bucket_notification("photos", Some("{\"x\":1}"))
        .await
        .unwrap());
    assert!(!store.set_bucket_notification("nope", None).await.unwrap());
    let got = store.get_bucket("photos").await.unwrap().unwrap();
    assert_eq!(got.notification.as_deref(), Some("{\"x\":1}"));

    let o = object("photos", "a.txt", "e1", "d1");
    store.put_object(&o, &WriteIf::Always).await.unwrap();
    assert_eq!(
        store.delete_bucket("photos").await.unwrap(),
        BucketDeleted::NotEmpty
    );
    store.delete_object("photos", "a.txt").await.unwrap();
    let upload = Upload {
        id: "u1".into(),
        bucket: "photos".into(),
        key: "big".into(),
        initiated_ms: 1,
        attrs: ObjectAttrs::default(),
    };
    assert!(store.create_upload(&upload).await.unwrap());
    assert_eq!(
        store.delete_bucket("photos").await.unwrap(),
        BucketDeleted::NotEmpty
    );
    store.abort_upload("u1").await.unwrap();
    assert_eq!(
        store.delete_bucket("photos").await.unwrap(),
        BucketDeleted::Deleted
    );
    assert_eq!(
        store.delete_bucket("photos").await.unwrap(),
        BucketDeleted::Missing
    );
    assert_eq!(store.get_bucket("photos").await.unwrap(), None);
    assert!(!store.create_upload(&upload).await.unwrap());
    assert_eq!(
        store.put_object(&o, &WriteIf::Always).await.unwrap(),
        Written::NoSuchBucket
    );
}

pub async fn object_writes_are_conditional_and_hand_back_what_they_replace<S: ContractStore>(
    store: Arc<S>,
) {
    store.create_bucket(&bucket("default", "b")).await.unwrap();
    // Keys are opaque: what a path would make of them does not matter.
    let keys = ["../etc/passwd", "/abs", "nul\0byte", "ünïcode/ključ"];
    for key in keys {
        let o = object("b", key, "e1", key);
        assert_eq!(
            store.put_object(&o, &WriteIf::Absent).await.unwrap(),
            Written::Stored { replaced: None }
        );
        assert_eq!(store.get_object("b", key).await.unwrap(), Some(o));
    }
    let first = object("b", "k", "e1", "d1");
    let second = object("b", "k", "e2", "d2");
    store.put_object(&first, &WriteIf::Always).await.unwrap();
    assert_eq!(
        store.put_object(&second, &WriteIf::Absent).await.unwrap(),
        Written::PreconditionFailed
    );
    assert_eq!(
        store
            .put_object(&second, &WriteIf::EtagIs("\"other\"".into()))
            .await
            .unwrap(),
        Written::PreconditionFailed
    );
    assert_eq!(
        store
            .put_object(&second, &WriteIf::EtagIs(first.etag.clone()))
            .await
            .unwrap(),
        Written::Stored {
            replaced: Some(Box::new(first.clone()))
        }
    );
    assert_eq!(
        store
            .put_object(
                &object("b", "new", "e", "d"),
                &WriteIf::EtagIs("\"e\"".into())
            )
            .await
            .unwrap(),
        Written::PreconditionFailed
    );
    assert_eq!(store.delete_object("b", "k").await.unwrap(), Some(second));
    assert_eq!(store.delete_object("b", "k").await.unwrap(), None);
    let mut referenced = store.referenced_data().await.unwrap();
    referenced.sort();
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(referenced, want);

    // Concurrent conditional creates of one key: exactly one wins.
    let tries = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let o = object("b", "race", &format!("e{i}"), &format!("r{i}"));
            store.put_object(&o, &WriteIf::Absent).await.unwrap()
        })
    });
    let mut stored = 0;
    for t in tries {
        if matches!(t.await.unwrap(), Written::Stored { .. }) {
            stored += 1;
        }
    }
    assert_eq!(stored, 1);
}

pub async fn listings_roll_up_delimiters_and_page_by_marker<S: ContractStore>(store: Arc<S>) {
    store.create_bucket(&bucket("default", "b")).await.unwrap();
    store.create_bucket(&bucket("default", "c")).await.unwrap();
    let keys = [
        "a/1",
        "a/2",
        "a/3/x",
        "b",
        "c/1",
        "c/2",
        "d",
        "photos/2024/x",
        "photos/2025/y",
        "z\u{ff}",
    ];
    for key in keys {
        store
            .put_object(&object("b", key, "e", key), &WriteIf::Always)
            .await
            .unwrap();
    }
    store
        .put_object(&object("c", "a/other", "e", "x"), &WriteIf::Always)
        .await
        .unwrap();
    let list = |prefix: &str, after: Option<&str>, delimiter: Option<&str>, max: usize| {
        let store = store.clone();
        let q = ListQuery {
            prefix: prefix.into(),
            start_after: after.map(str::to_string),
            delimiter: delimiter.map(str::to_string),
            max_keys: max,
        };
        async move { store.list_objects("b", &q).await.unwrap() }
    };
    let keys_of =
        |p: &crate::objects::ListPage| p.objects.iter().map(|o| o.key.clone()).collect::<Vec<_>>();

    let all = list("", None, None, 1000).await;
    assert_eq!(keys_of(&all), keys);
    assert!(!all.truncated);

    let top = list("", None, Some("/"), 1000).await;
    assert_eq!(keys_of(&top), ["b", "d", "z\u{ff}"]);
    assert_eq!(top.common_prefixes, ["a/", "c/", "photos/"]);

    let under = list("photos/", None, Some("/"), 1000).await;
    assert_eq!(under.common_prefixes, ["photos/2024/", "photos/2025/"]);
    assert!(under.objects.is_empty());

    let a = list("a/", None, Some("/"), 1000).await;
    assert_eq!(
        (keys_of(&a), a.common_prefixes.clone()),
        (
            vec!["a/1".to_string(), "a/2".into()],
            vec!["a/3/".to_string()]
        )
    );

    // Pages of two, each continuing after the last key or common prefix of the one before.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = list("", after.as_deref(), Some("/"), 2).await;
        seen.extend(keys_of(&page));
        seen.extend(page.common_prefixes.clone());
        if !page.truncated {
            break;
        }
        assert_eq!(page.objects.len() + page.common_prefixes.len(), 2);
        after = page.last.clone();
    }
    seen.sort();
    assert_eq!(seen, ["a/", "b", "c/", "d", "photos/", "z\u{ff}"]);

    let page = list("", Some("b"), None, 3).await;
    assert_eq!(keys_of(&page), ["c/1", "c/2", "d"]);
    assert!(page.truncated);
    assert_eq!(page.last.as_deref(), Some("d"));
    assert!(list("zz", None, None, 10).await.objects.is_empty());
    assert!(list("", None, None, 0).await.objects.is_empty());
}

pub async fn multipart_uploads_complete_or_abort_once<S: ContractStore>(store: Arc<S>) {
    store.create_bucket(&bucket("default", "b")).await.unwrap();
    let upload = |id: &str, key: &str| Upload {
        id: id.into(),
        bucket: "b".into(),
        key: key.into(),
        initiated_ms: 1,
        attrs: ObjectAttrs {
            content_type: Some("video/mp4".into()),
            ..Default::default()
        },
    };
    for (id, key) in [("u2", "movie"), ("u1", "movie"), ("u3", "other")] {
        assert!(store.create_upload(&upload(id, key)).await.unwrap());
    }
    assert_eq!(
        store.get_upload("b", "u1").await.unwrap(),
        Some(upload("u1", "movie"))
    );
    assert_eq!(store.get_upload("c", "u1").await.unwrap(), None);
    let ids = |v: Vec<Upload>| v.into_iter().map(|u| u.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_uploads("b", "", None, 10).await.unwrap()),
        ["u1", "u2", "u3"]
    );
    assert_eq!(
        ids(store
            .list_uploads("b", "mo", Some(("movie", "u1")), 10)
            .await
            .unwrap()),
        ["u2"]
    );
    let part = |number: u32, locator: &str| Part {
        upload_id: "u1".into(),
        number,
        size: 5,
        etag: format!("\"{locator}\""),
        checksums: Default::default(),
        locator: locator.into(),
        last_modified_ms: 2,
    };
    for (n, locator) in [(1, "p1"), (2, "p2"), (3, "p3")] {
        assert_eq!(
            store.put_part(&part(n, locator)).await.unwrap(),
            PartWritten::Stored { replaced: None }
        );
    }
    assert_eq!(
        store.put_part(&part(2, "p2b")).await.unwrap(),
        PartWritten::Stored {
            replaced: Some(part(2, "p2"))
        }
    );
    let numbers = |v: Vec<Part>| v.into_iter().map(|p| p.number).collect::<Vec<_>>();
    assert_eq!(
        numbers(store.list_parts("u1", 0, 10).await.unwrap()),
        [1, 2, 3]
    );
    assert_eq!(numbers(store.list_parts("u1", 1, 1).await.unwrap()), [2]);

    let mut done = object("b", "movie", "x-2", "p1");
    done.data.push(Segment {
        locator: "p2b".into(),
        size: 5,
    });
    match store
        .complete_upload("u1", &[1, 2], &done, &WriteIf::Always)
        .await
        .unwrap()
    {
        Completed::Stored { replaced, unused } => {
            assert_eq!((replaced, unused), (None, vec!["p3".to_string()]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.get_object("b", "movie").await.unwrap(),
        Some(done.clone())
    );
    assert_eq!(
        store
            .complete_upload("u1", &[1], &done, &WriteIf::Always)
            .await
            .unwrap(),
        Completed::NoSuchUpload
    );
    assert_eq!(
        store.put_part(&part(4, "late")).await.unwrap(),
        PartWritten::NoSuchUpload
    );
    assert_eq!(
        store
            .complete_upload("u2", &[], &done, &WriteIf::Absent)
            .await
            .unwrap(),
        Completed::PreconditionFailed
    );
    assert!(store.get_upload("b", "u2").await.unwrap().is_some());
    let mut p = part(1, "q1");
    p.upload_id = "u2".into();
    store.put_part(&p).await.unwrap();
    assert_eq!(
        store.abort_upload("u2").await.unwrap(),
        Some(vec!["q1".to_string()])
    );
    assert_eq!(store.abort_upload("u2").await.unwrap(), None);
    let mut referenced = store.referenced_data().await.unwrap();
    referenced.sort();
    assert_eq!(referenced, ["p1", "p2b"]);
}

// ---- Workflows (Step Functions): state machines, executions, histories ----

/// Expands to one `#[tokio::test]` per workflow contract function (a backend of
/// [`WorkflowStore`](crate::workflows::WorkflowStore)); `$make` as for [`contract_tests!`].
#[macro_export]
macro_rules! workflow_contract_tests {
    ($make:expr) => {
        $crate::workflow_contract_tests!(@each $make;
            state_machines_are_created_once_updated_by_revision_and_deleted,
            executions_start_once_by_arn_and_page_newest_first,
            checkpoints_commit_with_their_events_fenced_by_owner,
            any_node_aborts_a_running_execution_and_fences_its_owner,
            expired_execution_leases_are_claimed_once,
            executions_keep_the_trace_that_started_them,
            transitions_are_summed_per_state_machine_since_a_time
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let fixture = ($make)().await;
                $crate::contract::$name(
                    $crate::contract::Fixture::store(&fixture) as std::sync::Arc<dyn $crate::workflows::WorkflowStore>,
                ).await;
                drop(fixture);
            }
        )*
    };
}

/// A Standard state machine `name` of namespace `default` at `revision`.
pub fn state_machine(name: &str, revision: u64) -> crate::workflows::StoredStateMachine {
    crate::workflows::StoredStateMachine {
        namespace: "default".into(),
        name: name.into(),
        arn: format!("arn:aws:states:us-east-1:default:stateMachine:{name}"),
        definition: format!(
            r#"{{"StartAt":"P","States":{{"P":{{"Type":"Pass","Result":{revision},"End":true}}}}}}"#
        ),
        kind: "STANDARD".into(),
        role_arn: "arn:aws:iam::default:role/r".into(),
        created_ms: 1,
        updated_ms: revision as i64,
        revision,
    }
}

/// A running execution `name` of state machine `sm`, started at `start_ms`, leased to `owner`
/// until `lease_until_ms`.
pub fn execution(
    sm: &str,
    name: &str,
    start_ms: i64,
    owner: &str,
    lease_until_ms: i64,
) -> crate::workflows::StoredExecution {
    crate::workflows::StoredExecution {
        arn: format!("arn:aws:states:us-east-1:default:execution:{sm}:{name}"),
        namespace: "default".into(),
        name: name.into(),
        state_machine_arn: format!("arn:aws:states:us-east-1:default:stateMachine:{sm}"),
        definition: "{}".into(),
        status: "RUNNING".into(),
        input: r#"{"n":1}"#.into(),
        output: None,
        error: None,
        cause: None,
        start_ms,
        stop_ms: None,
        state: None,
        transitions: 0,
        owner: Some(owner.into()),
        lease_until_ms,
        trace: None,
    }
}

fn checkpoint(status: &str, events: &[u64], lease_until_ms: i64) -> crate::workflows::Checkpoint {
    crate::workflows::Checkpoint {
        status: status.into(),
        state: format!(r#"{{"at":{}}}"#, events.last().copied().unwrap_or(0)),
        transitions: events.len() as u64,
        output: (status == "SUCCEEDED").then(|| "42".into()),
        error: None,
        cause: None,
        stop_ms: (status != "RUNNING").then_some(99),
        events: events
            .iter()
            .map(|id| (*id, format!(r#"{{"id":{id}}}"#)))
            .collect(),
        lease_until_ms,
    }
}

pub async fn state_machines_are_created_once_updated_by_revision_and_deleted(
    store: Arc<dyn crate::workflows::WorkflowStore>,
) {
    assert!(store
        .create_state_machine(&state_machine("b", 1))
        .await
        .unwrap());
    assert!(store
        .create_state_machine(&state_machine("a", 1))
        .await
        .unwrap());
    assert!(!store
        .create_state_machine(&state_machine("a", 1))
        .await
        .unwrap());
    assert!(store
        .update_state_machine(&state_machine("a", 2))
        .await
        .unwrap());
    // A stale update (revision 2 again, expecting 1 stored) is refused.
    assert!(!store
        .update_state_machine(&state_machine("a", 2))
        .await
        .unwrap());
    assert!(!store
        .update_state_machine(&state_machine("zz", 2))
        .await
        .unwrap());
    let a = store
        .get_state_machine("default", "a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a, state_machine("a", 2));
    let names: Vec<String> = store
        .list_state_machines("default")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(store.list_state_machines("other").await.unwrap().is_empty());
    assert!(store.delete_state_machine("default", "a").await.unwrap());
    assert!(!store.delete_state_machine("default", "a").await.unwrap());
    assert_eq!(store.get_state_machine("default", "a").await.unwrap(), None);
}

pub async fn executions_start_once_by_arn_and_page_newest_first(
    store: Arc<dyn crate::workflows::WorkflowStore>,
) {
    use crate::workflows::{ExecutionQuery, Started};
    for (i, name) in ["e1", "e2", "e3"].iter().enumerate() {
        let e = execution("sm", name, 10 + i as i64, "n1", 1000);
        assert_eq!(store.start_execution(&e).await.unwrap(), Started::New);
    }
    store
        .start_execution(&execution("other", "e9", 50, "n1", 1000))
        .await
        .unwrap();
    let mut again = execution("sm", "e2", 77, "n2", 5);
    again.input = "{}".into();
    match store.start_execution(&again).await.unwrap() {
        Started::Existing(e) => assert_eq!(*e, execution("sm", "e2", 11, "n1", 1000)),
        Started::New => panic!("a second start of one ARN inserted a row"),
    }
    let sm = "arn:aws:states:us-east-1:default:stateMachine:sm".to_string();
    let page = |after: Option<(i64, String)>, status: Option<&str>| ExecutionQuery {
        state_machine_arn: sm.clone(),
        status: status.map(str::to_string),
        after,
        limit: 2,
    };
    let first = store.list_executions(&page(None, None)).await.unwrap();
    let names: Vec<&str> = first.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["e3", "e2"]);
    let last = &first[1];
    let second = store
        .list_executions(&page(Some((last.start_ms, last.arn.clone())), None))
        .await
        .unwrap();
    let names: Vec<&str> = second.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["e1"]);
    assert!(store
        .list_executions(&page(None, Some("SUCCEEDED")))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .list_executions(&page(None, Some("RUNNING")))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(store.get_execution("arn:none").await.unwrap(), None);
}

pub async fn any_node_aborts_a_running_execution_and_fences_its_owner(
    store: Arc<dyn crate::workflows::WorkflowStore>,
) {
    let e = execution("sm", "stopped", 10, "n1", 1000);
    store.start_execution(&e).await.unwrap();
    assert!(store
        .commit_execution(&e.arn, "n1", &checkpoint("RUNNING", &[1, 2], 2000))
        .await
        .unwrap());
    let abort = crate::workflows::Abort {
        stop_ms: 77,
        error: Some("Enough".into()),
        cause: None,
        event: r#"{"event_type":"ExecutionAborted","id":0,"previous_event_id":0}"#.into(),
    };
    assert!(store.abort_execution(&e.arn, &abort).await.unwrap());
    let stored = store.get_execution(&e.arn).await.unwrap().unwrap();
    assert_eq!(stored.status, "ABORTED");
    assert_eq!(
        (stored.error.as_deref(), stored.cause, stored.stop_ms),
        (Some("Enough"), None, Some(77))
    );
    assert_eq!((stored.owner, stored.lease_until_ms), (None, 0));
    // The event follows the last one, numbered by the store.
    let events = store
        .execution_history(&e.arn, 0, false, 100)
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    let (id, json) = &events[2];
    let event: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(*id, 3);
    assert_eq!(
        (
            &event["event_type"],
            &event["id"],
            &event["previous_event_id"]
        ),
        (
            &serde_json::json!("ExecutionAborted"),
            &serde_json::json!(3),
            &serde_json::json!(2)
        )
    );
    // The owner's next commit is refused; a second abort finds nothing running.
    assert!(!store
        .commit_execution(&e.arn, "n1", &checkpoint("RUNNING", &[3], 3000))
        .await
        .unwrap());
    assert!(!store.abort_execution(&e.arn, &abort).await.unwrap());
    assert_eq!(
        store
            .execution_history(&e.arn, 0, false, 100)
            .await
            .unwrap()
            .len(),
        3
    );
}

pub async fn checkpoints_commit_with_their_events_fenced_by_owner(
    store: Arc<dyn crate::workflows::WorkflowStore>,
) {
    let e = execution("sm", "e1", 10, "n1", 1000);
    store.start_execution(&e).await.unwrap();
    assert!(store
        .commit_execution(&e.arn, "n1", &checkpoint("RUNNING", &[1, 2, 3], 2000))
        .await
        .unwrap());
    // Another node's commit is refused and writes nothing.
    assert!(!store
        .commit_execution(&e.arn, "n2", &checkpoint("RUNNING", &[4, 5], 2000))
        .await
        .unwrap());
    let stored = store.get_execution(&e.arn).await.unwrap().unwrap();
    assert_eq!(stored.state.as_deref(), Some(r#"{"at":3}"#));
    assert_eq!((stored.transitions, stored.lease_until_ms), (3, 2000));
    // A resumed state records ids 3 and 4 again: 3 is replaced, 4 appended.
    let mut c = checkpoint("SUCCEEDED", &[3, 4], 3000);
    c.events[0].1 = r#"{"id":3,"again":true}"#.into();
    assert!(store.commit_execution(&e.arn, "n1", &c).await.unwrap());
    let done = store.get_execution(&e.arn).await.unwrap().unwrap();
    assert_eq!(done.status, "SUCCEEDED");
    assert_eq!(done.output.as_deref(), Some("42"));
    assert_eq!((done.stop_ms, done.owner.as_deref()), (Some(99), None));
    // A finished execution takes no more commits.
    assert!(!store
        .commit_execution(&e.arn, "n1", &checkpoint("RUNNING", &[9], 2000))
        .await
        .unwrap());
    let all = store
        .execution_history(&e.arn, 0, false, 100)
        .await
        .unwrap();
    let ids: Vec<u64> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    assert_eq!(all[2].1, r#"{"id":3,"again":true}"#);
    let page: Vec<u64> = store
        .execution_history(&e.arn, 1, false, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(page, [2, 3]);
    let newest: Vec<u64> = store
        .execution_history(&e.arn, 0, true, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(newest, [4, 3, 2]);
    let older: Vec<u64> = store
        .execution_history(&e.arn, 2, true, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(older, [1]);
}

pub async fn executions_keep_the_trace_that_started_them(
    store: Arc<dyn crate::workflows::WorkflowStore>,
) {
    let mut traced = execution("sm", "traced", 1, "n1", 50);
    traced.trace = Some(trace_context('5', '6'));
    store.start_execution(&traced).await.unwrap();
    let plain = execution("sm", "plain", 2, "n1", 1000);
    store.start_execution(&plain).await.unwrap();
    let got = store.get_execution(&traced.arn).await.unwrap().unwrap();
    assert_eq!(got.trace, traced.trace);
    let got = store.get_execution(&plain.arn).await.unwrap().unwrap();
    assert_eq!(got.trace, None);
    // The node that takes it over continues the same trace.
    let claimed = store.claim_executions(100, "n2", 500, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].trace, traced.trace);
}

pub async fn expired_execution_leases_are_claimed_once(
    store: Arc<dyn crate::workflows::WorkflowStore>,
) {
    let live = execution("sm", "live", 1, "n1", 1000);
    let dead = execution("sm", "dead", 2, "n2", 1000);
    let expired = execution("sm", "expired", 3, "n3", 50);
    for e in [&live, &dead, &expired] {
        store.start_execution(e).await.unwrap();
    }
    let done = execution("sm", "done", 4, "n3", 50);
    store.start_execution(&done).await.unwrap();
    store
        .commit_execution(&done.arn, "n3", &checkpoint("SUCCEEDED", &[1], 0))
        .await
        .unwrap();
    // At 100 only the expired lease is due; finished executions are never claimed.
    let claimed = store.claim_executions(100, "n1", 500, 10).await.unwrap();
    let names: Vec<&str> = claimed.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["expired"]);
    assert_eq!(claimed[0].owner.as_deref(), Some("n1"));
    assert!(store
        .claim_executions(100, "n4", 500, 10)
        .await
        .unwrap()
        .is_empty());
    // n2 is gone: its lease ends now, n1's stay.
    assert_eq!(
        store
            .release_execution_leases(100, &["n1".to_string()])
            .await
            .unwrap(),
        1
    );
    let claimed = store.claim_executions(100, "n4", 500, 10).await.unwrap();
    let names: Vec<&str> = claimed.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["dead"]);
    // The old owner's commit is fenced off; the new owner's applies.
    assert!(!store
        .commit_execution(&dead.arn, "n2", &checkpoint("RUNNING", &[1], 900))
        .await
        .unwrap());
    assert!(store
        .commit_execution(&dead.arn, "n4", &checkpoint("RUNNING", &[1], 900))
        .await
        .unwrap());
    assert_eq!(store.extend_execution_leases("n1", 5000).await.unwrap(), 2);
    let e = store.get_execution(&expired.arn).await.unwrap().unwrap();
    assert_eq!(e.lease_until_ms, 5000);
}

pub async fn transitions_are_summed_per_state_machine_since_a_time(
    store: Arc<dyn crate::workflows::WorkflowStore>,
) {
    use crate::workflows::TransitionUsage;
    for (sm, name, start) in [
        ("a", "old", 5),
        ("a", "e1", 10),
        ("a", "e2", 20),
        ("b", "e3", 30),
    ] {
        store
            .start_execution(&execution(sm, name, start, "n1", 1000))
            .await
            .unwrap();
    }
    let mut other = execution("a", "elsewhere", 40, "n1", 1000);
    other.namespace = "other".into();
    other.arn = "arn:aws:states:us-east-1:other:execution:a:elsewhere".into();
    store.start_execution(&other).await.unwrap();
    let arn =
        |sm: &str, name: &str| format!("arn:aws:states:us-east-1:default:execution:{sm}:{name}");
    for (exec, events) in [
        (arn("a", "e1"), &[1, 2, 3][..]),
        (arn("a", "e2"), &[1, 2][..]),
        (arn("a", "old"), &[1][..]),
    ] {
        assert!(store
            .commit_execution(&exec, "n1", &checkpoint("SUCCEEDED", events, 0))
            .await
            .unwrap());
    }
    let machine = |sm: &str| format!("arn:aws:states:us-east-1:default:stateMachine:{sm}");
    assert_eq!(
        store.transition_usage("default", 10).await.unwrap(),
        [
            TransitionUsage {
                state_machine_arn: machine("a"),
                executions: 2,
                transitions: 5
            },
            TransitionUsage {
                state_machine_arn: machine("b"),
                executions: 1,
                transitions: 0
            }
        ]
    );
    assert_eq!(store.transition_usage("default", 31).await.unwrap(), []);
    assert_eq!(store.transition_usage("other", 0).await.unwrap().len(), 1);
}

// ---- Tables (DynamoDB-compatible): definitions, items, index entries, stream records ----

/// Expands to one `#[tokio::test]` per table contract function (a backend of
/// [`TableStore`](crate::tables::TableStore)); `$make` as for [`contract_tests!`].
#[macro_export]
macro_rules! table_contract_tests {
    ($make:expr) => {
        $crate::table_contract_tests!(@each $make;
            tables_are_created_once_listed_by_name_and_deleted_with_their_items,
            keys_order_numbers_strings_and_binaries_both_ways,
            one_of_eight_racing_conditional_writers_wins,
            index_entries_follow_updates_and_deletes,
            tables_are_updated_and_reindexed_without_stream_records,
            stream_records_follow_commit_order_with_both_images,
            stream_records_are_trimmed_by_age_and_bounds_say_what_is_kept,
            parallel_scan_segments_partition_the_items,
            request_tokens_make_a_transaction_happen_once
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let fixture = ($make)().await;
                $crate::contract::$name(
                    $crate::contract::Fixture::store(&fixture) as std::sync::Arc<dyn $crate::tables::TableStore>,
                ).await;
                drop(fixture);
            }
        )*
    };
}

mod table_fixtures {
    use crate::tables::{
        Change, Decide, ItemKey, NewItem, RangeItem, RangeQuery, StoredTable, TableStore,
    };
    use lambent_tables::key::{encode_composite, partition_hash};
    use lambent_tables::AttributeValue;
    use std::ops::Bound;

    /// A table `name` of namespace `ns`, with or without a stream.
    pub fn table(ns: &str, name: &str, stream: bool) -> StoredTable {
        StoredTable {
            namespace: ns.into(),
            name: name.into(),
            id: format!("{ns}/{name}/1"),
            definition: r#"{"KeySchema":[]}"#.into(),
            stream_view_type: stream.then(|| "NEW_AND_OLD_IMAGES".to_string()),
            ttl_attribute: None,
            created_ms: 1,
        }
    }

    /// The encoded key of (partition `p`, sort `s`).
    pub fn key(p: &AttributeValue, s: Option<&AttributeValue>) -> Vec<u8> {
        encode_composite(p, s)
    }

    pub fn item_key(table: &StoredTable, key: Vec<u8>) -> ItemKey {
        ItemKey {
            table_id: table.id.clone(),
            key,
        }
    }

    /// An item to store: `json` for partition `p`, in the given indexes.
    pub fn new_item(json: &str, p: &AttributeValue, index_keys: Vec<(String, Vec<u8>)>) -> NewItem {
        NewItem {
            json: json.into(),
            size: json.len() as u64,
            partition_hash: partition_hash(p),
            index_keys,
        }
    }

    /// Writes `change` at `key` unconditionally; returns the old item.
    pub async fn write(store: &dyn TableStore, key: ItemKey, change: Change) -> Option<String> {
        let decide: Decide = Box::new(move |_| Ok(vec![change]));
        let written = store
            .write_items(vec![key], 7, decide)
            .await
            .unwrap()
            .unwrap();
        written.old.into_iter().next().unwrap()
    }

    /// Every item of a table (or index) between bounds, read in pages of `page`, in order.
    pub async fn read_all(
        store: &dyn TableStore,
        table: &StoredTable,
        index: Option<&str>,
        bounds: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        forward: bool,
        page: usize,
    ) -> Vec<RangeItem> {
        let mut all: Vec<RangeItem> = Vec::new();
        loop {
            let q = RangeQuery {
                table_id: table.id.clone(),
                index: index.map(String::from),
                lower: bounds.0.clone(),
                upper: bounds.1.clone(),
                after: all.last().map(|r| crate::tables::ItemCursor {
                    index_key: r.index_key.clone(),
                    key: r.key.clone(),
                }),
                forward,
                segment: None,
                limit: page,
            };
            let rows = store.range_items(&q).await.unwrap();
            let done = rows.len() < page;
            all.extend(rows);
            if done {
                return all;
            }
        }
    }
}

use crate::tables::{
    Abort, Change, Decide, Idempotent, RangeQuery, RequestToken, StreamBounds, TableStore,
};
use lambent_tables::AttributeValue as Av;
use std::ops::Bound;
use table_fixtures::*;

fn n(text: &str) -> Av {
    Av::number(text).unwrap()
}

pub async fn tables_are_created_once_listed_by_name_and_deleted_with_their_items(
    store: Arc<dyn TableStore>,
) {
    for name in ["b", "a", "c"] {
        assert!(store.create_table(&table("ns", name, false)).await.unwrap());
    }
    assert!(store
        .create_table(&table("other", "a", false))
        .await
        .unwrap());
    assert!(!store.create_table(&table("ns", "a", true)).await.unwrap());
    let got = store.get_table("ns", "a").await.unwrap().unwrap();
    assert_eq!(got, table("ns", "a", false));
    assert_eq!(store.list_tables("ns", None, 2).await.unwrap(), ["a", "b"]);
    assert_eq!(store.list_tables("ns", Some("b"), 2).await.unwrap(), ["c"]);

    let t = table("ns", "a", false);
    let p = Av::S("p".into());
    write(
        &*store,
        item_key(&t, key(&p, None)),
        Change::Put(new_item("{}", &p, vec![])),
    )
    .await;
    assert_eq!(store.table_stats(&t.id).await.unwrap(), (1, 2));
    let b = table("ns", "b", false);
    let (at_a, at_b) = (item_key(&t, key(&p, None)), item_key(&b, key(&p, None)));
    assert_eq!(
        store.get_items(std::slice::from_ref(&at_a)).await.unwrap(),
        [Some("{}".to_string())]
    );
    assert_eq!(
        store
            .get_items(&[at_b.clone(), at_a.clone()])
            .await
            .unwrap(),
        [None, Some("{}".to_string())]
    );
    assert_eq!(
        store.delete_table("ns", "a").await.unwrap(),
        Some(t.clone())
    );
    assert_eq!(store.delete_table("ns", "a").await.unwrap(), None);
    assert_eq!(store.table_stats(&t.id).await.unwrap(), (0, 0));
    assert!(store.get_table("ns", "a").await.unwrap().is_none());
    assert!(store.get_table("other", "a").await.unwrap().is_some());
    let decide: Decide = Box::new(|_| Ok(vec![Change::Delete]));
    let gone = store
        .write_items(vec![item_key(&t, key(&p, None))], 1, decide)
        .await;
    assert!(matches!(gone, Err(StoreError::Changed(_))), "{gone:?}");
    // Reads by a remembered id of a deleted table say so, alone or beside another table's.
    for keys in [vec![at_a.clone()], vec![at_b, at_a]] {
        let gone = store.get_items(&keys).await;
        assert!(
            matches!(&gone, Err(StoreError::Changed(m)) if m == crate::tables::TABLE_GONE),
            "{gone:?}"
        );
    }
}

pub async fn keys_order_numbers_strings_and_binaries_both_ways(store: Arc<dyn TableStore>) {
    let t = table("ns", "t", false);
    store.create_table(&t).await.unwrap();
    let sorted: Vec<Vec<Av>> = vec![
        [
            "-1E+10", "-100", "-99.5", "-1", "-0.001", "0", "1E-130", "0.5", "1", "9", "10",
            "1E+20",
        ]
        .iter()
        .map(|s| n(s))
        .collect(),
        ["A", "Z", "a", "ab", "b", "é", "中"]
            .iter()
            .map(|s| Av::S(s.to_string()))
            .collect(),
        [
            vec![0u8],
            vec![0, 0],
            vec![0, 1],
            vec![1],
            vec![0x7f],
            vec![0x80],
            vec![0xff],
        ]
        .into_iter()
        .map(Av::B)
        .collect(),
    ];
    for (i, values) in sorted.iter().enumerate() {
        let p = Av::S(format!("p{i}"));
        // Written out of order, with a neighbouring partition on each side.
        for v in values.iter().rev() {
            let json = format!("{v:?}");
            write(
                &*store,
                item_key(&t, key(&p, Some(v))),
                Change::Put(new_item(&json, &p, vec![])),
            )
            .await;
        }
        for other in [format!("p{i}\0"), format!("p{i}0")] {
            let o = Av::S(other);
            let first = Some(&values[0]);
            write(
                &*store,
                item_key(&t, key(&o, first)),
                Change::Put(new_item("x", &o, vec![])),
            )
            .await;
        }
        let range = lambent_tables::key::composite_range(&p, (Bound::Unbounded, Bound::Unbounded));
        for page in [1, 3, 100] {
            let forward = read_all(&*store, &t, None, range.clone(), true, page).await;
            let expected: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
            let got: Vec<String> = forward.iter().map(|r| r.json.clone()).collect();
            assert_eq!(got, expected, "forward, pages of {page}");
            let backward = read_all(&*store, &t, None, range.clone(), false, page).await;
            let got: Vec<String> = backward.iter().map(|r| r.json.clone()).collect();
            let mut reversed = expected.clone();
            reversed.reverse();
            assert_eq!(got, reversed, "backward, pages of {page}");
        }
    }
    // A sort-key sub-range: 0 < n <= 10 in partition p0.
    let p0 = Av::S("p0".into());
    let range = lambent_tables::key::composite_range(
        &p0,
        (
            Bound::Excluded(key_value(&n("0"))),
            Bound::Included(key_value(&n("10"))),
        ),
    );
    let got: Vec<String> = read_all(&*store, &t, None, range, true, 2)
        .await
        .into_iter()
        .map(|r| r.json)
        .collect();
    let expected: Vec<String> = ["1E-130", "0.5", "1", "9", "10"]
        .iter()
        .map(|s| format!("{:?}", n(s)))
        .collect();
    assert_eq!(got, expected);
}

fn key_value(v: &Av) -> Vec<u8> {
    let mut out = Vec::new();
    lambent_tables::key::encode_key_value(v, &mut out);
    out
}

/// The error a losing writer's decide returns.
#[derive(Debug, thiserror::Error)]
#[error("the item exists")]
struct Exists;

pub async fn one_of_eight_racing_conditional_writers_wins(store: Arc<dyn TableStore>) {
    let t = table("ns", "t", true);
    store.create_table(&t).await.unwrap();
    let p = Av::S("contended".into());
    for round in 0..3 {
        let k = item_key(&t, key(&p, Some(&n(&round.to_string()))));
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let mut writers = Vec::new();
        for w in 0..8 {
            let (store, k, p, barrier) = (store.clone(), k.clone(), p.clone(), barrier.clone());
            writers.push(tokio::spawn(async move {
                barrier.wait().await;
                let decide: Decide = Box::new(move |old| match &old[0] {
                    Some(_) => Err(Abort(Box::new(Exists))),
                    None => Ok(vec![Change::Put(new_item(&format!("w{w}"), &p, vec![]))]),
                });
                store.write_items(vec![k], 1, decide).await.unwrap()
            }));
        }
        let mut winners = Vec::new();
        for (w, writer) in writers.into_iter().enumerate() {
            match writer.await.unwrap() {
                Ok(written) => {
                    assert_eq!(written.old, [None]);
                    winners.push(format!("w{w}"));
                }
                Err(abort) => assert!(abort.0.downcast_ref::<Exists>().is_some()),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(
            store.get_items(&[k]).await.unwrap(),
            [Some(winners[0].clone())]
        );
    }
    // One stream record per committed write.
    assert_eq!(store.stream_records(&t.id, 0, 100).await.unwrap().len(), 3);
}

pub async fn index_entries_follow_updates_and_deletes(store: Arc<dyn TableStore>) {
    let t = table("ns", "t", false);
    store.create_table(&t).await.unwrap();
    let gsi = |status: &str, n: &str| {
        vec![(
            "by_status".to_string(),
            key(&Av::S(status.into()), Some(&self::n(n))),
        )]
    };
    let items = [("a", "open", "3"), ("b", "open", "1"), ("c", "done", "2")];
    for (id, status, rank) in items {
        let p = Av::S(id.into());
        write(
            &*store,
            item_key(&t, key(&p, None)),
            Change::Put(new_item(id, &p, gsi(status, rank))),
        )
        .await;
    }
    let open = lambent_tables::key::composite_range(
        &Av::S("open".into()),
        (Bound::Unbounded, Bound::Unbounded),
    );
    let names =
        |rows: Vec<crate::tables::RangeItem>| rows.into_iter().map(|r| r.json).collect::<Vec<_>>();
    assert_eq!(
        names(read_all(&*store, &t, Some("by_status"), open.clone(), true, 1).await),
        ["b", "a"]
    );
    // b moves to done; c moves to open with the lowest rank; a leaves every index.
    let pb = Av::S("b".into());
    write(
        &*store,
        item_key(&t, key(&pb, None)),
        Change::Put(new_item("b", &pb, gsi("done", "1"))),
    )
    .await;
    let pc = Av::S("c".into());
    write(
        &*store,
        item_key(&t, key(&pc, None)),
        Change::Put(new_item("c", &pc, gsi("open", "0"))),
    )
    .await;
    let pa = Av::S("a".into());
    write(
        &*store,
        item_key(&t, key(&pa, None)),
        Change::Put(new_item("a", &pa, vec![])),
    )
    .await;
    assert_eq!(
        names(read_all(&*store, &t, Some("by_status"), open.clone(), true, 1).await),
        ["c"]
    );
    let done = lambent_tables::key::composite_range(
        &Av::S("done".into()),
        (Bound::Unbounded, Bound::Unbounded),
    );
    assert_eq!(
        names(read_all(&*store, &t, Some("by_status"), done.clone(), false, 1).await),
        ["b"]
    );
    write(&*store, item_key(&t, key(&pc, None)), Change::Delete).await;
    write(&*store, item_key(&t, key(&pb, None)), Change::Delete).await;
    let all = (Bound::Unbounded, Bound::Unbounded);
    assert!(
        read_all(&*store, &t, Some("by_status"), all.clone(), true, 10)
            .await
            .is_empty()
    );
    assert_eq!(
        names(read_all(&*store, &t, None, all, true, 10).await),
        ["a"]
    );
}

pub async fn tables_are_updated_and_reindexed_without_stream_records(store: Arc<dyn TableStore>) {
    let t = table("ns", "t", true);
    store.create_table(&t).await.unwrap();
    store
        .create_table(&table("ns", "plain", false))
        .await
        .unwrap();
    assert!(store.ttl_tables().await.unwrap().is_empty());
    let mut changed = t.clone();
    changed.definition = r#"{"KeySchema":[],"GlobalSecondaryIndexes":[]}"#.into();
    changed.stream_view_type = Some("KEYS_ONLY".into());
    changed.ttl_attribute = Some("expires".into());
    assert!(store.update_table(&changed).await.unwrap());
    assert_eq!(
        store.get_table("ns", "t").await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(store.ttl_tables().await.unwrap(), [changed.clone()]);
    let mut gone = changed.clone();
    gone.id = "another".into();
    assert!(!store.update_table(&gone).await.unwrap());

    // A reindex replaces the index entries of existing items only, and writes no record.
    let (pa, pb) = (Av::S("a".into()), Av::S("b".into()));
    write(
        &*store,
        item_key(&t, key(&pa, None)),
        Change::Put(new_item("a", &pa, vec![])),
    )
    .await;
    let entry = |v: &str| vec![("by_v".to_string(), key(&Av::S(v.into()), None))];
    let decide: Decide = Box::new(move |current| {
        assert_eq!(current, [Some("a".to_string()), None]);
        Ok(vec![
            Change::Reindex(entry("x")),
            Change::Reindex(entry("y")),
        ])
    });
    let keys = vec![item_key(&t, key(&pa, None)), item_key(&t, key(&pb, None))];
    let written = store.write_items(keys, 9, decide).await.unwrap().unwrap();
    assert_eq!(written.new, [Some("a".to_string()), None]);
    let all = (Bound::Unbounded, Bound::Unbounded);
    let rows = read_all(&*store, &t, Some("by_v"), all.clone(), true, 10).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].json, "a");
    assert_eq!(rows[0].index_key, Some(key(&Av::S("x".into()), None)));
    // Removed again: an empty reindex.
    let decide: Decide = Box::new(|_| Ok(vec![Change::Reindex(vec![])]));
    let keys = vec![item_key(&t, key(&pa, None))];
    store.write_items(keys, 10, decide).await.unwrap().unwrap();
    assert!(read_all(&*store, &t, Some("by_v"), all.clone(), true, 10)
        .await
        .is_empty());
    // Only the put wrote a stream record.
    assert_eq!(store.stream_records(&t.id, 0, 100).await.unwrap().len(), 1);
    assert_eq!(store.table_stats(&t.id).await.unwrap(), (1, 1));
}

pub async fn stream_records_follow_commit_order_with_both_images(store: Arc<dyn TableStore>) {
    let t = table("ns", "t", true);
    let quiet = table("ns", "quiet", false);
    store.create_table(&t).await.unwrap();
    store.create_table(&quiet).await.unwrap();
    let (p1, p2) = (Av::S("1".into()), Av::S("2".into()));
    let (k1, k2) = (item_key(&t, key(&p1, None)), item_key(&t, key(&p2, None)));
    write(
        &*store,
        k1.clone(),
        Change::Put(new_item("v1", &p1, vec![])),
    )
    .await;
    write(
        &*store,
        k1.clone(),
        Change::Put(new_item("v2", &p1, vec![])),
    )
    .await;
    // A transaction over two keys, one of them only checked: one record.
    let decide: Decide = Box::new({
        let p2 = p2.clone();
        move |_| Ok(vec![Change::Keep, Change::Put(new_item("w1", &p2, vec![]))])
    });
    store
        .write_items(vec![k1.clone(), k2.clone()], 9, decide)
        .await
        .unwrap()
        .unwrap();
    write(&*store, k1.clone(), Change::Delete).await;
    // Deleting what is not there changes nothing and records nothing.
    write(&*store, k1.clone(), Change::Delete).await;
    write(&*store, k1.clone(), Change::Expire).await;
    // A TTL deletion: a REMOVE record marked as the service's.
    write(&*store, k2.clone(), Change::Expire).await;
    let qp = Av::S("q".into());
    write(
        &*store,
        item_key(&quiet, key(&qp, None)),
        Change::Put(new_item("q", &qp, vec![])),
    )
    .await;

    let records = store.stream_records(&t.id, 0, 100).await.unwrap();
    type Seen<'a> = (u64, Vec<u8>, Option<&'a str>, Option<&'a str>);
    let seen: Vec<Seen<'_>> = records
        .iter()
        .map(|r| {
            (
                r.sequence,
                r.key.clone(),
                r.old.as_deref(),
                r.new.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, k1.key.clone(), None, Some("v1")),
            (2, k1.key.clone(), Some("v1"), Some("v2")),
            (3, k2.key.clone(), None, Some("w1")),
            (4, k1.key.clone(), Some("v2"), None),
            (5, k2.key.clone(), Some("w1"), None),
        ]
    );
    // Only the TTL's deletion is marked as such.
    assert_eq!(
        records.iter().map(|r| r.expired).collect::<Vec<_>>(),
        [false, false, false, false, true]
    );
    assert_eq!(records[2].created_ms, 9);
    let rest = store.stream_records(&t.id, 2, 1).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.sequence).collect::<Vec<_>>(), [3]);
    assert!(store
        .stream_records(&quiet.id, 0, 100)
        .await
        .unwrap()
        .is_empty());

    // Concurrent writers of different keys: sequence numbers are dense and each key's
    // records keep its own write order.
    let mut writers = Vec::new();
    for w in 0..8 {
        let (store, t) = (store.clone(), t.clone());
        writers.push(tokio::spawn(async move {
            let p = Av::S(format!("c{w}"));
            for i in 0..5 {
                let item = new_item(&format!("c{w}-{i}"), &p, vec![]);
                write(&*store, item_key(&t, key(&p, None)), Change::Put(item)).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let records = store.stream_records(&t.id, 5, 1000).await.unwrap();
    assert_eq!(
        records.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        (6..46).collect::<Vec<u64>>()
    );
    for w in 0..8 {
        let mine: Vec<&str> = records
            .iter()
            .filter_map(|r| r.new.as_deref())
            .filter(|n| n.starts_with(&format!("c{w}-")))
            .collect();
        let expected: Vec<String> = (0..5).map(|i| format!("c{w}-{i}")).collect();
        assert_eq!(mine, expected);
    }
}

pub async fn stream_records_are_trimmed_by_age_and_bounds_say_what_is_kept(
    store: Arc<dyn TableStore>,
) {
    let t = table("ns", "t", true);
    let quiet = table("ns", "quiet", false);
    store.create_table(&t).await.unwrap();
    store.create_table(&quiet).await.unwrap();
    let bounds = |id: String| {
        let store = store.clone();
        async move { store.stream_bounds(&id).await.unwrap() }
    };
    assert_eq!(
        bounds(t.id.clone()).await,
        StreamBounds {
            oldest: None,
            latest: 0
        }
    );
    let p = Av::S("p".into());
    for (i, at) in [100, 200, 300].into_iter().enumerate() {
        let item = new_item(&format!("v{i}"), &p, vec![]);
        let decide: Decide = Box::new(move |_| Ok(vec![Change::Put(item)]));
        store
            .write_items(vec![item_key(&t, key(&p, None))], at, decide)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        bounds(t.id.clone()).await,
        StreamBounds {
            oldest: Some(1),
            latest: 3
        }
    );
    assert_eq!(store.trim_stream_records(250).await.unwrap(), 2);
    assert_eq!(
        bounds(t.id.clone()).await,
        StreamBounds {
            oldest: Some(3),
            latest: 3
        }
    );
    let kept = store.stream_records(&t.id, 0, 10).await.unwrap();
    assert_eq!(kept.iter().map(|r| r.sequence).collect::<Vec<_>>(), [3]);
    assert_eq!(store.trim_stream_records(250).await.unwrap(), 0);
    assert_eq!(store.trim_stream_records(301).await.unwrap(), 1);
    // Trimmed away, the numbering goes on from where it was.
    assert_eq!(
        bounds(t.id.clone()).await,
        StreamBounds {
            oldest: None,
            latest: 3
        }
    );
    assert_eq!(bounds(quiet.id.clone()).await, StreamBounds::default());
}

pub async fn parallel_scan_segments_partition_the_items(store: Arc<dyn TableStore>) {
    let t = table("ns", "t", false);
    store.create_table(&t).await.unwrap();
    for i in 0..40 {
        let p = Av::S(format!("item{i}"));
        write(
            &*store,
            item_key(&t, key(&p, None)),
            Change::Put(new_item(&format!("item{i}"), &p, vec![])),
        )
        .await;
    }
    let mut seen = Vec::new();
    for segment in 0..3 {
        let q = RangeQuery {
            table_id: t.id.clone(),
            index: None,
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
            after: None,
            forward: true,
            segment: Some((segment, 3)),
            limit: 100,
        };
        let rows = store.range_items(&q).await.unwrap();
        assert!(!rows.is_empty(), "segment {segment} is empty");
        for r in rows {
            let p = Av::S(r.json.clone());
            assert_eq!(lambent_tables::key::scan_segment(&p, 3), segment);
            seen.push(r.json);
        }
    }
    seen.sort();
    let mut all: Vec<String> = (0..40).map(|i| format!("item{i}")).collect();
    all.sort();
    assert_eq!(seen, all);
}

/// Expands to one `#[tokio::test]` per stream mapping contract function, over a fresh
/// [`Fixture`] whose store is also a [`StreamMappingStore`](crate::stream_mappings::StreamMappingStore).
#[macro_export]
macro_rules! stream_mapping_contract_tests {
    ($make:expr) => {
        $crate::stream_mapping_contract_tests!(@each $make;
            stream_mappings_are_created_updated_and_deleted_without_touching_checkpoints,
            stream_checkpoints_move_forward_by_compare_and_set
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let fixture = ($make)().await;
                $crate::contract::$name(
                    $crate::contract::Fixture::store(&fixture)
                        as std::sync::Arc<dyn $crate::stream_mappings::StreamMappingStore>,
                ).await;
                drop(fixture);
            }
        )*
    };
}

/// A stream mapping `id` of namespace `ns`, created at `created_ms`.
pub fn stream_mapping(
    ns: &str,
    id: &str,
    created_ms: i64,
) -> crate::stream_mappings::StreamMapping {
    crate::stream_mappings::StreamMapping {
        id: id.into(),
        namespace: ns.into(),
        table: "orders".into(),
        table_id: "t-1".into(),
        stream_arn: format!("arn:aws:dynamodb:us-east-1:{ns}:table/orders/stream/1"),
        function: "f".into(),
        batch_size: 100,
        batching_window_ms: 0,
        starting_position: crate::stream_mappings::StartingPosition::TrimHorizon,
        starting_timestamp_ms: None,
        max_retries: -1,
        max_record_age_s: -1,
        bisect_on_error: false,
        report_batch_item_failures: false,
        on_failure: None,
        enabled: true,
        created_ms,
        modified_ms: created_ms,
    }
}

pub async fn stream_mappings_are_created_updated_and_deleted_without_touching_checkpoints(
    store: Arc<dyn crate::stream_mappings::StreamMappingStore>,
) {
    let b = stream_mapping("default", "m-b", 5);
    let a = stream_mapping("other", "m-a", 5);
    let c = stream_mapping("default", "m-c", 1);
    store.create_stream_mapping(&b, 0).await.unwrap();
    store.create_stream_mapping(&a, 7).await.unwrap();
    store.create_stream_mapping(&c, 3).await.unwrap();
    // A second mapping with the same id is refused.
    assert!(store.create_stream_mapping(&b, 0).await.is_err());
    // Every namespace's, in creation order (ties in insertion order).
    let all = store.all_stream_mappings().await.unwrap();
    assert_eq!(all, [c.clone(), b.clone(), a.clone()]);
    assert_eq!(
        store.get_stream_mapping("default", "m-b").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(
        store.get_stream_mapping("default", "m-a").await.unwrap(),
        None
    );
    // An update replaces the settings (in the mapping's namespace only), not the checkpoint.
    let mut changed = a.clone();
    changed.batch_size = 3;
    changed.enabled = false;
    changed.on_failure = Some("arn:aws:sqs:us-east-1:other:dlq".into());
    changed.starting_position = crate::stream_mappings::StartingPosition::AtTimestamp;
    changed.starting_timestamp_ms = Some(1234);
    assert!(store.update_stream_mapping(&changed).await.unwrap());
    let mut wrong_ns = changed.clone();
    wrong_ns.namespace = "default".into();
    assert!(!store.update_stream_mapping(&wrong_ns).await.unwrap());
    assert_eq!(
        store.get_stream_mapping("other", "m-a").await.unwrap(),
        Some(changed)
    );
    assert_eq!(store.stream_checkpoint("m-a").await.unwrap(), Some(7));
    assert_eq!(store.stream_checkpoint("m-c").await.unwrap(), Some(3));
    // Deleted with its checkpoint, once, in its own namespace.
    assert!(!store.delete_stream_mapping("other", "m-b").await.unwrap());
    assert!(store.delete_stream_mapping("default", "m-b").await.unwrap());
    assert!(!store.delete_stream_mapping("default", "m-b").await.unwrap());
    assert_eq!(store.stream_checkpoint("m-b").await.unwrap(), None);
    assert_eq!(store.all_stream_mappings().await.unwrap().len(), 2);
}

pub async fn stream_checkpoints_move_forward_by_compare_and_set(
    store: Arc<dyn crate::stream_mappings::StreamMappingStore>,
) {
    store
        .create_stream_mapping(&stream_mapping("default", "m", 1), 10)
        .await
        .unwrap();
    assert!(store.advance_stream_checkpoint("m", 10, 15).await.unwrap());
    // A poller that read the old checkpoint (another node's, before a lease moved) loses.
    assert!(!store.advance_stream_checkpoint("m", 10, 12).await.unwrap());
    assert_eq!(store.stream_checkpoint("m").await.unwrap(), Some(15));
    // Racing pollers from one checkpoint: exactly one moves it.
    let racers: Vec<_> = (0..8u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.advance_stream_checkpoint("m", 15, 20 + i).await })
        })
        .collect();
    let mut won = Vec::new();
    for (i, r) in racers.into_iter().enumerate() {
        if r.await.unwrap().unwrap() {
            won.push(20 + i as u64);
        }
    }
    assert_eq!(won.len(), 1);
    assert_eq!(store.stream_checkpoint("m").await.unwrap(), Some(won[0]));
    // A deleted mapping's checkpoint cannot move.
    assert!(store.delete_stream_mapping("default", "m").await.unwrap());
    assert!(!store
        .advance_stream_checkpoint("m", won[0], won[0] + 1)
        .await
        .unwrap());
    assert_eq!(store.stream_checkpoint("m").await.unwrap(), None);
}

pub async fn request_tokens_make_a_transaction_happen_once(store: Arc<dyn TableStore>) {
    let t = table("ns", "t", true);
    store.create_table(&t).await.unwrap();
    let p = Av::S("p".into());
    let k = item_key(&t, key(&p, None));
    let token = |ns: &str, token: &str, fingerprint: &str, since_ms: i64| RequestToken {
        namespace: ns.into(),
        token: token.into(),
        fingerprint: fingerprint.into(),
        since_ms,
    };
    let put = |json: &str| -> Decide {
        let (p, json) = (p.clone(), json.to_string());
        Box::new(move |_| Ok(vec![Change::Put(new_item(&json, &p, vec![]))]))
    };
    let once = |decide: Decide, now_ms: i64, t: RequestToken| {
        let (store, k) = (store.clone(), k.clone());
        async move {
            store
                .write_items_once(vec![k], now_ms, decide, &t)
                .await
                .unwrap()
        }
    };
    let item = || {
        let (store, k) = (store.clone(), k.clone());
        async move { store.get_items(&[k]).await.unwrap().pop().unwrap() }
    };

    let first = once(put("a"), 1_000, token("ns", "tok", "f1", 0)).await;
    assert!(matches!(first, Idempotent::Ran(Ok(_))), "{first:?}");
    // The same request again: nothing done.
    let again = once(put("b"), 2_000, token("ns", "tok", "f1", 0)).await;
    assert!(matches!(again, Idempotent::Repeated), "{again:?}");
    // Another request with that token: refused, nothing done.
    let other = once(put("c"), 2_000, token("ns", "tok", "f2", 0)).await;
    assert!(matches!(other, Idempotent::Mismatch), "{other:?}");
    assert_eq!(item().await.as_deref(), Some("a"));
    assert_eq!(store.stream_records(&t.id, 0, 10).await.unwrap().len(), 1);
    // Tokens are per namespace.
    let elsewhere = once(put("d"), 2_000, token("other", "tok", "f2", 0)).await;
    assert!(matches!(elsewhere, Idempotent::Ran(Ok(_))), "{elsewhere:?}");
    // A refused write records no token: its retry runs.
    let refuse: Decide = Box::new(|_| Err(Abort("no".into())));
    let refused = once(refuse, 2_000, token("ns", "t2", "f1", 0)).await;
    assert!(matches!(refused, Idempotent::Ran(Err(_))), "{refused:?}");
    let retried = once(put("e"), 2_000, token("ns", "t2", "f1", 0)).await;
    assert!(matches!(retried, Idempotent::Ran(Ok(_))), "{retried:?}");
    // Out of the window (recorded before `since_ms`), a token is forgotten.
    let later = once(put("f"), 700_000, token("ns", "tok", "f9", 1_001)).await;
    assert!(matches!(later, Idempotent::Ran(Ok(_))), "{later:?}");
    assert_eq!(item().await.as_deref(), Some("f"));

    // Racing retries of one request: exactly one runs.
    let mut racers = Vec::new();
    for i in 0..8 {
        let fut = once(put(&format!("r{i}")), 800_000, token("ns", "race", "f", 0));
        racers.push(tokio::spawn(fut));
    }
    let mut ran = 0;
    for r in racers {
        match r.await.unwrap() {
            Idempotent::Ran(Ok(_)) => ran += 1,
            Idempotent::Repeated => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ran, 1);
    let records = store.stream_records(&t.id, 0, 100).await.unwrap();
    assert_eq!(records.len(), 5, "a, d, e, f and one racer");
}
