//! The tables' streams as stream → function mappings read them ([`StreamSource`]): a stream
//! named by its table or ARN, and its records in the DynamoDB Streams Lambda event's shape
//! (the Streams record plus `eventSourceARN`).

use crate::service::Tables;
use crate::streams::{parse_stream_arn, record_json, shard_id, StreamError};
use async_trait::async_trait;
use lambent_queues::{EventRecord, SourceError, StreamInfo, StreamMapping, StreamSource};
use lambent_tables::TableError;
use std::sync::Arc;

/// The streams of [`Tables`].
pub struct TableStreams(pub Arc<Tables>);

fn failed(e: impl std::fmt::Display) -> SourceError {
    SourceError(e.to_string())
}

impl TableStreams {
    fn info(&self, table: &crate::service::Table) -> StreamInfo {
        StreamInfo {
            table: table.stored.name.clone(),
            table_id: table.stored.id.clone(),
            stream_arn: self.0.stream_arn(table),
            shard_id: shard_id(&table.stored),
        }
    }
}

#[async_trait]
impl StreamSource for TableStreams {
    async fn of_table(
        &self,
        namespace: &str,
        table: &str,
    ) -> Result<Option<StreamInfo>, SourceError> {
        match self.0.table(namespace, table).await {
            Ok(t) if t.stored.stream_view_type.is_some() => Ok(Some(self.info(&t))),
            Ok(_) | Err(TableError::ResourceNotFound(_) | TableError::Validation(_)) => Ok(None),
            Err(e) => Err(failed(e)),
        }
    }

    async fn of_arn(&self, namespace: &str, arn: &str) -> Result<Option<StreamInfo>, SourceError> {
        if parse_stream_arn(arn).is_none() {
            return Ok(None);
        }
        match self.0.stream_table(namespace, arn).await {
            Ok(t) => Ok(Some(self.info(&t))),
            Err(StreamError::Table(
                TableError::ResourceNotFound(_) | TableError::Validation(_),
            )) => Ok(None),
            Err(e) => Err(failed(e)),
        }
    }

    async fn latest(&self, table_id: &str) -> Result<u64, SourceError> {
        Ok(self
            .0
            .store()
            .stream_bounds(table_id)
            .await
            .map_err(failed)?
            .latest)
    }

    async fn read(
        &self,
        m: &StreamMapping,
        after: u64,
        limit: usize,
    ) -> Result<Option<Vec<EventRecord>>, SourceError> {
        let table = match self.0.table(&m.namespace, &m.table).await {
            Ok(t) if t.stored.id == m.table_id => t,
            Ok(_) | Err(TableError::ResourceNotFound(_)) => return Ok(None),
            Err(e) => return Err(failed(e)),
        };
        let records = self
            .0
            .store()
            .stream_records(&m.table_id, after, limit)
            .await
            .map_err(failed)?;
        records
            .iter()
            .map(|r| {
                let record =
                    record_json(&table, self.0.region(), r, Some(&m.stream_arn)).map_err(failed)?;
                Ok(EventRecord {
                    sequence: r.sequence,
                    created_ms: r.created_ms,
                    record,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}
