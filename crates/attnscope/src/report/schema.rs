//! The one declaration of heads.csv / heads.parquet's columns: name, Arrow
//! type and how to read the value from a typed head record. The CSV and
//! Parquet writers both follow it, so the columns and their order are the
//! same whatever the model (a column whose value is undefined for a head,
//! e.g. `softcap` without soft-capping, is null / empty). docs/definitions.md
//! lists the columns with their units.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::observer::HeadRecord;

/// One row's source: the run's text and context length (absent for bare
/// head records) and the head.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    pub run: Option<(&'a str, usize)>,
    pub head: &'a HeadRecord,
}

/// A cell. Non-finite floats are null (as in report.json).
pub enum Cell {
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(bool),
    Str(Option<String>),
}

/// One column: name, Arrow type, reader.
pub struct Column {
    pub name: &'static str,
    pub dtype: DataType,
    pub get: fn(&Row<'_>) -> Cell,
}

fn int(x: usize) -> Cell {
    Cell::Int(i64::try_from(x).ok())
}
fn float(x: Option<f64>) -> Cell {
    Cell::Float(x.filter(|v| v.is_finite()))
}

macro_rules! col {
    ($name:literal, Int, $get:expr) => {
        Column { name: $name, dtype: DataType::Int64, get: $get }
    };
    ($name:literal, Float, $get:expr) => {
        Column { name: $name, dtype: DataType::Float64, get: $get }
    };
    ($name:literal, Bool, $get:expr) => {
        Column { name: $name, dtype: DataType::Boolean, get: $get }
    };
    ($name:literal, Str, $get:expr) => {
        Column { name: $name, dtype: DataType::Utf8, get: $get }
    };
}

/// The run columns, present in heads.csv / heads.parquet only.
pub const RUN_COLUMNS: [Column; 2] = [
    col!("text", Str, |r| Cell::Str(r.run.map(|x| x.0.to_string()))),
    col!("ctx", Int, |r| Cell::Int(r.run.and_then(|x| i64::try_from(x.1).ok()))),
];

/// The head columns, in report order (every scalar of a head record;
/// vectors such as the spectrum stay in report.json).
pub const HEAD_COLUMNS: [Column; 29] = [
    col!("layer", Int, |r| int(r.head.layer)),
    col!("head", Int, |r| int(r.head.head)),
    col!("kv_head", Int, |r| int(r.head.kv_head)),
    col!("n", Int, |r| int(r.head.field.n)),
    col!("d", Int, |r| int(r.head.field.d)),
    col!("method", Str, |r| Cell::Str(Some(r.head.field.method.name().to_string()))),
    col!("logit_transform", Str, |r| Cell::Str(Some(
        match r.head.field.logit_transform {
            field::TransformKind::None => "none",
            field::TransformKind::Softcap => "softcap",
        }
        .to_string()
    ))),
    col!("softcap", Float, |r| float(r.head.field.softcap)),
    col!("check_rows", Int, |r| int(r.head.field.check_rows)),
    col!("zero_sum_residual", Float, |r| float(Some(r.head.field.zero_sum_residual))),
    col!("shift_consistency", Float, |r| float(Some(r.head.field.shift_consistency))),
    col!("attention_entropy", Float, |r| float(Some(r.head.field.attention_entropy))),
    col!("rank_bound", Int, |r| int(r.head.field.rank_bound)),
    col!("numerical_rank", Int, |r| int(r.head.field.numerical_rank)),
    col!("rank_bound_holds", Bool, |r| Cell::Bool(r.head.field.rank_bound_holds)),
    col!("rank_bound_applicable", Bool, |r| Cell::Bool(r.head.field.rank_bound_applicable)),
    col!("k90", Int, |r| int(r.head.field.k90)),
    col!("k99", Int, |r| int(r.head.field.k99)),
    col!("effective_rank", Float, |r| float(Some(r.head.field.effective_rank))),
    col!("stable_rank", Float, |r| float(Some(r.head.field.stable_rank))),
    col!("k90_learned", Int, |r| Cell::Int(r.head.field.k90_learned.and_then(|k| i64::try_from(k).ok()))),
    col!("effective_rank_learned", Float, |r| float(r.head.field.effective_rank_learned)),
    col!("spectral_gap", Float, |r| float(r.head.field.spectral_gap)),
    col!("k90_gap", Float, |r| float(r.head.field.k90_gap)),
    col!("participation_ratio", Float, |r| float(Some(r.head.field.participation_ratio))),
    col!("top1pct_share", Float, |r| float(Some(r.head.field.top1pct_share))),
    col!("argmax_key", Int, |r| int(r.head.field.argmax_key)),
    col!("key_coherence", Float, |r| float(Some(r.head.field.key_coherence))),
    col!("energy_leverage_spearman", Float, |r| float(r.head.field.energy_leverage_spearman)),
];

/// The columns of a table: with the run columns (heads.csv, heads.parquet)
/// or without (bare head records, as the Python binding returns them).
pub fn columns(with_run: bool) -> Vec<&'static Column> {
    let run: &'static [Column] = if with_run { &RUN_COLUMNS } else { &[] };
    run.iter().chain(HEAD_COLUMNS.iter()).collect()
}

/// The Arrow schema of those columns (every column nullable).
pub fn schema(with_run: bool) -> Schema {
    Schema::new(columns(with_run).iter().map(|c| Field::new(c.name, c.dtype.clone(), true)).collect::<Vec<_>>())
}

/// A cell as CSV text: empty for null; floats in report.json's notation.
fn csv_cell(c: Cell) -> String {
    match c {
        Cell::Int(v) => v.map_or(String::new(), |x| x.to_string()),
        Cell::Float(v) => v.map_or(String::new(), |x| serde_json::Number::from_f64(x).map_or(String::new(), |n| n.to_string())),
        Cell::Bool(b) => b.to_string(),
        Cell::Str(s) => s.unwrap_or_default(),
    }
}

/// The rows as CSV, header first.
pub fn to_csv(rows: &[Row<'_>], with_run: bool) -> anyhow::Result<Vec<u8>> {
    let cols = columns(with_run);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(cols.iter().map(|c| c.name))?;
    for r in rows {
        w.write_record(cols.iter().map(|c| csv_cell((c.get)(r))))?;
    }
    Ok(w.into_inner()?)
}

/// The rows as one Arrow record batch of [`schema`].
pub fn to_batch(rows: &[Row<'_>], with_run: bool) -> anyhow::Result<RecordBatch> {
    let cols = columns(with_run);
    let arrays: Vec<ArrayRef> = cols
        .iter()
        .map(|c| -> ArrayRef {
            let cells = rows.iter().map(|r| (c.get)(r));
            match c.dtype {
                DataType::Int64 => Arc::new(cells.map(|x| if let Cell::Int(v) = x { v } else { None }).collect::<Int64Array>()),
                DataType::Float64 => Arc::new(cells.map(|x| if let Cell::Float(v) = x { v } else { None }).collect::<Float64Array>()),
                DataType::Boolean => Arc::new(cells.map(|x| if let Cell::Bool(v) = x { Some(v) } else { None }).collect::<BooleanArray>()),
                _ => Arc::new(cells.map(|x| if let Cell::Str(v) = x { v } else { None }).collect::<StringArray>()),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(Arc::new(schema(with_run)), arrays)?)
}

/// The rows as Parquet bytes.
pub fn to_parquet(rows: &[Row<'_>], with_run: bool) -> anyhow::Result<Vec<u8>> {
    let batch = to_batch(rows, with_run)?;
    let mut buf = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every head column is a scalar field of a serialised head record
    /// (the schema cannot drift from the record), and docs/definitions.md
    /// lists every column.
    #[test]
    fn columns_match_the_record_and_the_docs() {
        let names: Vec<&str> = columns(true).iter().map(|c| c.name).collect();
        let mut seen = std::collections::BTreeSet::new();
        assert!(names.iter().all(|n| seen.insert(*n)), "duplicate column in {names:?}");
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/definitions.md")).unwrap();
        let table = &docs[docs.find("## Columns of heads.csv").expect("docs/definitions.md has a column list")..];
        for n in &names {
            assert!(table.contains(&format!("| `{n}` |")), "docs/definitions.md does not list column {n}");
        }
    }

    /// The declared columns are exactly the scalar fields of a serialised
    /// head record, in its order, with the declared types (softcap: a
    /// soft-capped head, so that the optional column is present in JSON).
    #[test]
    fn head_columns_are_the_records_scalars() {
        let (n, d) = (12, 3);
        let q: Vec<f64> = (0..n * d).map(|x| ((x * 7 % 11) as f64 - 5.0) / 3.0).collect();
        let k: Vec<f64> = (0..n * d).map(|x| ((x * 5 % 13) as f64 - 6.0) / 4.0).collect();
        let mut input = field::HeadInput::new(&q, &k, n, d, 0.5);
        input.transform = field::LogitTransform::Softcap(30.0);
        let rec = HeadRecord { layer: 1, head: 2, kv_head: 0, field: field::analyze(&input, &field::Params::default()).unwrap() };
        let serde_json::Value::Object(obj) = serde_json::to_value(&rec).unwrap() else { panic!() };
        let scalars: Vec<&str> = obj.iter().filter(|(_, v)| !v.is_array() && !v.is_object()).map(|(k, _)| k.as_str()).collect();
        let declared: Vec<&str> = HEAD_COLUMNS.iter().map(|c| c.name).collect();
        assert_eq!(scalars, declared);
        let row = Row { run: Some(("t", 12)), head: &rec };
        let batch = to_batch(&[row], true).unwrap();
        assert_eq!(batch.num_columns(), 31);
        let csv = String::from_utf8(to_csv(&[row], true).unwrap()).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next().unwrap().split(',').count(), 31);
        assert!(lines.next().unwrap().starts_with("t,12,1,2,0,12,3,dense,softcap,30.0,"), "{csv}");
    }
}
