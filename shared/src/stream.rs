//! Reading records from stdin, line by line, without slurping.
//!
//! Each line is parsed once into a JSON object. A tool asks whether it acts
//! on the record's type ([`InputRecord::is`]) and parses it into its struct;
//! everything else it writes back unchanged with [`InputRecord::raw`].
//! A malformed line is a [`UsageError`] naming the line number.

use std::io::BufRead;

use serde_json::{Map, Value};

use crate::record::{Record, VERSION};
use crate::UsageError;

/// One line of input, parsed as a JSON object with a `"type"`.
#[derive(Clone, Debug)]
pub struct InputRecord {
    /// 1-based line number in the input.
    pub line: usize,
    /// The `"type"` field.
    pub kind: String,
    raw: String,
    fields: Map<String, Value>,
}

impl InputRecord {
    /// Whether this record is of type `T`.
    pub fn is<T: Record>(&self) -> bool {
        self.kind == T::TYPE
    }

    /// The line exactly as read, for pass-through.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The record as a `T`.
    ///
    /// Fails when a fixed field is missing or has the wrong type, or when the
    /// record's version is newer than this tool knows.
    pub fn parse<T: Record>(&self) -> Result<T, UsageError> {
        self.clone().into_parsed()
    }

    /// The record as a `T`, without copying it: for tools that hold many.
    ///
    /// Fails as [`InputRecord::parse`] does.
    pub fn into_parsed<T: Record>(self) -> Result<T, UsageError> {
        let version = self.fields.get("v").and_then(Value::as_u64);
        if version != Some(VERSION) {
            return Err(self.error(&format!(
                "{} record has version {}, this tool reads version {VERSION}",
                self.kind,
                self.fields
                    .get("v")
                    .map_or("(none)".to_owned(), Value::to_string)
            )));
        }
        let (line, kind) = (self.line, self.kind);
        let mut fields = self.fields;
        fields.remove("type");
        fields.remove("v");
        serde_json::from_value(Value::Object(fields))
            .map_err(|err| UsageError(format!("input line {line}: invalid {kind} record: {err}")))
    }

    fn error(&self, message: &str) -> UsageError {
        UsageError(format!("input line {}: {message}", self.line))
    }
}

/// The records of `input`, one per non-empty line.
///
/// Yields a [`UsageError`] naming the line for a line that is not UTF-8, not
/// a JSON object, or has no string `"type"`; I/O errors become errors too.
pub fn read_records<R: BufRead>(input: R) -> impl Iterator<Item = Result<InputRecord, UsageError>> {
    let mut lines = input.split(b'\n');
    let mut number = 0;
    std::iter::from_fn(move || loop {
        number += 1;
        let bytes = match lines.next()? {
            Ok(bytes) => bytes,
            Err(err) => {
                return Some(Err(UsageError(format!(
                    "reading input line {number}: {err}"
                ))))
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        return Some(parse_line(number, bytes));
    })
}

fn parse_line(line: usize, bytes: Vec<u8>) -> Result<InputRecord, UsageError> {
    let fail = |what: String| UsageError(format!("input line {line}: {what}"));
    let mut raw = String::from_utf8(bytes).map_err(|_| fail("not valid UTF-8".into()))?;
    if raw.ends_with('\r') {
        raw.pop();
    }
    let fields = match serde_json::from_str::<Value>(&raw) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => {
            return Err(fail(
                "not a JSON object; expected one record per line".into(),
            ))
        }
        Err(err) => return Err(fail(format!("malformed JSON: {err}"))),
    };
    let kind = match fields.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => return Err(fail("record has no \"type\" field".into())),
    };
    Ok(InputRecord {
        line,
        kind,
        raw,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backup;

    const BACKUP: &str = r#"{"type":"backup","v":1,"id":"d_1","name":"d","time":"2026-11-21T12:00:00Z","path":"b/d_1.tar.zst","source":{"kind":"dir","location":"/d"},"format":"tar.zst","mode":"full","parent":null,"bytes":1,"sha256":"00","note":"kept"}"#;

    #[test]
    fn known_records_parse_and_keep_unknown_fields() {
        let records: Vec<_> = read_records(BACKUP.as_bytes()).collect();
        let record = records[0].as_ref().map_err(|e| e.to_string()).unwrap();
        assert!(record.is::<Backup>());
        let backup: Backup = record.parse().unwrap();
        assert_eq!(
            backup.extra.get("note"),
            Some(&Value::String("kept".into()))
        );
        assert_eq!(backup.to_line(), BACKUP);
    }

    #[test]
    fn other_records_pass_through_byte_for_byte() {
        let line = r#"{"type":"mystery","v":7,  "x":[1,2]}"#;
        let record = read_records(line.as_bytes()).next().unwrap().unwrap();
        assert!(!record.is::<Backup>());
        assert_eq!(record.raw(), line);
    }

    #[test]
    fn malformed_lines_name_their_line_number() {
        let input = format!("{BACKUP}\n\n{{\"type\":\n");
        let results: Vec<_> = read_records(input.as_bytes()).collect();
        let err = results[1]
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(err.starts_with("input line 3: malformed JSON"), "{err}");
    }

    #[test]
    fn records_without_type_or_of_a_newer_version_are_refused() {
        let err = read_records(&b"{\"v\":1}"[..])
            .next()
            .unwrap()
            .err()
            .unwrap();
        assert!(err.to_string().contains("no \"type\""));
        let newer = BACKUP.replace("\"v\":1", "\"v\":2");
        let record = read_records(newer.as_bytes()).next().unwrap().unwrap();
        let err = record.parse::<Backup>().err().unwrap();
        assert!(err.to_string().contains("version 2"), "{err}");
    }
}
