//! Reading records from stdin, line by line, without slurping.
//!
//! Each line is parsed once into a JSON object. A tool asks whether it acts
//! on the record's type ([`InputRecord::is`]) and parses it into its struct;
//! everything else it writes back unchanged with [`InputRecord::raw`].
//! A malformed line is a [`UsageError`] naming the line number, and so is a
//! line longer than [`MAX_LINE`]: it is read no further than that, so a huge
//! line on stdin costs no more memory than the cap.

use std::io::{self, BufRead};

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

/// The longest input line read, in bytes: far beyond any real record (a
/// few KiB), small enough that a wrong file on stdin costs little memory.
pub const MAX_LINE: usize = 16 << 20;

/// The records of `input`, one per non-empty line.
///
/// Yields a [`UsageError`] naming the line for a line that is not UTF-8, not
/// a JSON object, has no string `"type"`, or is longer than [`MAX_LINE`];
/// I/O errors become errors too.
pub fn read_records<R: BufRead>(
    mut input: R,
) -> impl Iterator<Item = Result<InputRecord, UsageError>> {
    let mut number = 0;
    std::iter::from_fn(move || loop {
        number += 1;
        let mut bytes = Vec::new();
        match read_line(&mut input, &mut bytes) {
            Ok(Line::End) => return None,
            Ok(Line::Whole) => {}
            Ok(Line::TooLong) => {
                return Some(Err(UsageError(format!(
                    "input line {number} is longer than {} MiB, far more than any record; \
                     is this the right input? Records are one JSON object per line",
                    MAX_LINE >> 20
                ))))
            }
            Err(err) => {
                return Some(Err(UsageError(format!(
                    "reading input line {number}: {err}"
                ))))
            }
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        return Some(parse_line(number, bytes));
    })
}

enum Line {
    End,
    Whole,
    TooLong,
}

/// Reads one line without its `\n` into `line`; a line past [`MAX_LINE`]
/// is skipped to its end without being kept.
fn read_line<R: BufRead>(input: &mut R, line: &mut Vec<u8>) -> io::Result<Line> {
    let mut too_long = false;
    loop {
        let buffer = match input.fill_buf() {
            Ok(buffer) => buffer,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if buffer.is_empty() {
            return Ok(match (too_long, line.is_empty()) {
                (true, _) => Line::TooLong,
                (false, true) => Line::End,
                (false, false) => Line::Whole,
            });
        }
        let newline = buffer.iter().position(|&b| b == b'\n');
        let part = &buffer[..newline.unwrap_or(buffer.len())];
        if !too_long && line.len() + part.len() > MAX_LINE {
            too_long = true;
            *line = Vec::new();
        }
        if !too_long {
            line.extend_from_slice(part);
        }
        let used = newline.map_or(buffer.len(), |at| at + 1);
        input.consume(used);
        if newline.is_some() {
            return Ok(if too_long { Line::TooLong } else { Line::Whole });
        }
    }
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

/// The single record a tool acts on, from `records` (stdin), and the raw
/// lines of the records it does not act on, to pass on in order.
///
/// `pick` returns the records that count with their kind (`"backup"`); the
/// errors name `wanted` (`"backup or snapshot"`). Fails (a usage error)
/// on a malformed line, on what `pick` refuses, and unless exactly one
/// record counts.
pub fn one_record<T>(
    records: impl Iterator<Item = Result<InputRecord, UsageError>>,
    wanted: &str,
    mut pick: impl FnMut(&InputRecord) -> Result<Option<(T, &'static str)>, UsageError>,
) -> Result<(T, Vec<String>), UsageError> {
    let mut picked = Vec::new();
    let mut passed_on = Vec::new();
    for record in records {
        let record = record?;
        match pick(&record)? {
            Some(item) => picked.push(item),
            None => passed_on.push(record.raw),
        }
    }
    if picked.len() == 1 {
        let (item, _) = picked.remove(0);
        return Ok((item, passed_on));
    }
    if picked.is_empty() {
        return Err(UsageError(format!("no {wanted} record on stdin")));
    }
    let kinds: std::collections::BTreeSet<&str> = picked.iter().map(|(_, kind)| *kind).collect();
    Err(UsageError(format!(
        "{} {} records on stdin; restore one at a time (for example with tail -n 1)",
        picked.len(),
        kinds.into_iter().collect::<Vec<_>>().join(" and ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backup;

    const BACKUP: &str = r#"{"type":"backup","v":1,"id":"d_1","name":"d","time":"2026-11-21T12:00:00Z","path":"b/d_1.tar.zst","source":{"kind":"dir","location":"/d"},"format":"tar.zst","mode":"full","parent":null,"bytes":1,"sha256":"00","note":"kept"}"#;

    #[test]
    fn known_records_parse_and_keep_unknown_fields() {
        let records: Vec<_> = read_records(BACKUP.as_bytes()).collect();
        let record = records[0]
            .as_ref()
            .map_err(std::string::ToString::to_string)
            .unwrap();
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
    fn a_huge_line_is_refused_by_number_without_being_kept() {
        use std::io::Read;
        let huge = io::repeat(b'x').take(100 << 20);
        let input = format!("{BACKUP}\n").into_bytes();
        let after = format!("\n{BACKUP}\n").into_bytes();
        let mut records = read_records(io::BufReader::new(input.chain(huge).chain(&after[..])));
        assert!(records.next().unwrap().is_ok());
        let err = records.next().unwrap().err().unwrap().to_string();
        assert!(
            err.starts_with("input line 2 is longer than 16 MiB"),
            "{err}"
        );
        let third = records.next().unwrap().map_err(|e| e.to_string()).unwrap();
        assert_eq!(third.line, 3);
        assert!(records.next().is_none());
    }

    #[test]
    fn a_line_of_exactly_the_cap_is_read() {
        let mut line = String::from(r#"{"type":"pad","v":1,"p":""#);
        line.push_str(&"y".repeat(MAX_LINE - line.len() - 2));
        line.push_str("\"}");
        assert_eq!(line.len(), MAX_LINE);
        let record = read_records(line.as_bytes()).next().unwrap().unwrap();
        assert_eq!(record.kind, "pad");
        let longer = format!("{line} ");
        assert!(read_records(longer.as_bytes()).next().unwrap().is_err());
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
