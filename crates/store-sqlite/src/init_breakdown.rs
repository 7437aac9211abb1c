//! The cold-start breakdown of activation records ([`InitBreakdown`]): four nullable columns of
//! the `activations` table, all null on warm activations and on records older than them.

use lambent_core::{Birth, InitBreakdown};
use rusqlite::Row;

/// The columns (appended to the store's migrations).
pub(crate) const MIGRATION: &str = r#"
ALTER TABLE activations ADD COLUMN init_birth TEXT;
ALTER TABLE activations ADD COLUMN init_sandbox_us INTEGER;
ALTER TABLE activations ADD COLUMN init_runtime_us INTEGER;
ALTER TABLE activations ADD COLUMN init_import_us INTEGER;
"#;

/// One row's values of the columns, in the order the store lists them.
pub(crate) type Columns = (Option<&'static str>, Option<u64>, Option<u64>, Option<u64>);

pub(crate) fn to_columns(init: Option<&InitBreakdown>) -> Columns {
    match init {
        None => (None, None, None, None),
        Some(i) => (
            Some(i.birth.as_str()),
            Some(i.sandbox_us),
            Some(i.runtime_us),
            i.import_us,
        ),
    }
}

/// The breakdown stored in `row` from column `first` on; `None` when there is none.
pub(crate) fn from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<Option<InitBreakdown>> {
    let birth: Option<String> = row.get(first)?;
    let Some(birth) = birth else {
        return Ok(None);
    };
    let birth = birth.parse::<Birth>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(first, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(Some(InitBreakdown {
        birth,
        sandbox_us: row.get::<_, Option<u64>>(first + 1)?.unwrap_or(0),
        runtime_us: row.get::<_, Option<u64>>(first + 2)?.unwrap_or(0),
        import_us: row.get(first + 3)?,
    }))
}
