//! heads.csv and heads.parquet: one row per run × layer × head, columns
//! `text, ctx, layer, head, kv_head` + every scalar measure (vectors such as
//! the spectrum stay in report.json).

use std::sync::Arc;

use anyhow::Result;
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use serde_json::{Map, Value};

use super::{head_json, RunRecord};
use crate::observer::HeadRecord;

/// Flat rows: column name → scalar JSON value, columns in report order.
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Map<String, Value>>,
}

pub fn rows(runs: &[RunRecord]) -> Rows {
    let mut columns: Vec<String> = vec!["text".into(), "ctx".into()];
    let mut rows = Vec::new();
    for run in runs {
        for h in &run.heads {
            let mut row = Map::new();
            row.insert("text".into(), Value::from(run.text.clone()));
            row.insert("ctx".into(), Value::from(run.ctx));
            flatten_into(h, &mut columns, &mut row);
            rows.push(row);
        }
    }
    Rows { columns, rows }
}

/// Adds `h`'s scalar fields to `row`, and new column names to `columns`.
fn flatten_into(h: &HeadRecord, columns: &mut Vec<String>, row: &mut Map<String, Value>) {
    if let Value::Object(obj) = head_json(h) {
        for (k, v) in obj {
            if v.is_array() || v.is_object() {
                continue;
            }
            if !columns.contains(&k) {
                columns.push(k.clone());
            }
            row.insert(k, v);
        }
    }
}

/// The same flattening for bare head records (no `text`, `ctx` columns).
pub fn head_rows(records: &[HeadRecord]) -> Rows {
    let mut columns: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for h in records {
        let mut row = Map::new();
        flatten_into(h, &mut columns, &mut row);
        rows.push(row);
    }
    Rows { columns, rows }
}

pub fn to_csv(rows: &Rows) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&rows.columns)?;
    for row in &rows.rows {
        w.write_record(rows.columns.iter().map(|c| match row.get(c) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }))?;
    }
    Ok(w.into_inner()?)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Float,
    Bool,
    Str,
}

fn kind_of(rows: &Rows, col: &str) -> Kind {
    let mut kind = None;
    for row in &rows.rows {
        let k = match row.get(col) {
            Some(Value::Bool(_)) => Kind::Bool,
            Some(Value::String(_)) => Kind::Str,
            Some(Value::Number(n)) if n.is_f64() => Kind::Float,
            Some(Value::Number(_)) => Kind::Int,
            _ => continue,
        };
        kind = Some(match (kind, k) {
            (None, k) => k,
            (Some(Kind::Int), Kind::Float) | (Some(Kind::Float), Kind::Int) => Kind::Float,
            (Some(a), _) => a,
        });
    }
    kind.unwrap_or(Kind::Float)
}

pub fn to_parquet(rows: &Rows) -> Result<Vec<u8>> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for col in &rows.columns {
        let get = |r: &Map<String, Value>| r.get(col.as_str()).cloned().unwrap_or(Value::Null);
        let (dt, arr): (DataType, ArrayRef) = match kind_of(rows, col) {
            Kind::Int => (DataType::Int64, Arc::new(rows.rows.iter().map(|r| get(r).as_i64()).collect::<Int64Array>())),
            Kind::Float => (DataType::Float64, Arc::new(rows.rows.iter().map(|r| get(r).as_f64()).collect::<Float64Array>())),
            Kind::Bool => (DataType::Boolean, Arc::new(rows.rows.iter().map(|r| get(r).as_bool()).collect::<BooleanArray>())),
            Kind::Str => (
                DataType::Utf8,
                Arc::new(rows.rows.iter().map(|r| get(r).as_str().map(str::to_string)).collect::<StringArray>()),
            ),
        };
        fields.push(Field::new(col, dt, true));
        arrays.push(arr);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
    let mut buf = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(buf)
}
