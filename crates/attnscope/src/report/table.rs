//! heads.csv and heads.parquet: one row per run × layer × head, the columns
//! of [`super::schema`] (`text, ctx` + every scalar of a head record;
//! vectors such as the spectrum stay in report.json).

use anyhow::Result;

use super::schema::{self, Row};
use super::RunRecord;
use crate::observer::HeadRecord;

/// One row per run × head.
pub fn rows(runs: &[RunRecord]) -> Vec<Row<'_>> {
    runs.iter().flat_map(|run| run.heads.iter().map(move |h| Row { run: Some((run.text.as_str(), run.ctx)), head: h })).collect()
}

/// heads.csv.
pub fn to_csv(runs: &[RunRecord]) -> Result<Vec<u8>> {
    schema::to_csv(&rows(runs), true)
}

/// heads.parquet.
pub fn to_parquet(runs: &[RunRecord]) -> Result<Vec<u8>> {
    schema::to_parquet(&rows(runs), true)
}

/// Bare head records (no `text`, `ctx` columns) as Parquet.
pub fn heads_parquet(records: &[HeadRecord]) -> Result<Vec<u8>> {
    let rows: Vec<Row<'_>> = records.iter().map(|h| Row { run: None, head: h }).collect();
    schema::to_parquet(&rows, false)
}
