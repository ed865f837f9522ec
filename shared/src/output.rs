//! Records in a pipe, a table on a terminal: decided once at startup.
//!
//! In record mode every record is written as one line and flushed, so a
//! pipeline streams. In human mode records are collected and printed as one
//! aligned table per record type when the tool finishes; records of types
//! without a table (pass-through) are printed as they came.

use std::io::{self, IsTerminal, Write};

use crate::record::Record;

/// `--json` / `--human`, shared by every tool.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct OutputArgs {
    /// Write JSON-lines records even when stdout is a terminal.
    #[arg(long, conflicts_with = "human")]
    pub json: bool,
    /// Write a human table even when stdout is not a terminal.
    #[arg(long)]
    pub human: bool,
}

/// How records reach stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMode {
    Records,
    Human,
}

impl OutputArgs {
    /// Records unless stdout is a terminal; the flags override.
    pub fn mode(&self) -> OutputMode {
        if self.json {
            OutputMode::Records
        } else if self.human || io::stdout().is_terminal() {
            OutputMode::Human
        } else {
            OutputMode::Records
        }
    }
}

/// The colours tables use, as health levels: ok, warn, crit, unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    Green,
    Yellow,
    Red,
    Magenta,
}

/// `text` in `colour` when stdout is a terminal and `NO_COLOR` is not set
/// (the convention of no-color.org); else `text` unchanged.
pub fn paint(colour: Colour, text: &str) -> String {
    let wanted = io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    if !wanted {
        return text.to_owned();
    }
    let code = match colour {
        Colour::Green => "32",
        Colour::Yellow => "33",
        Colour::Red => "31",
        Colour::Magenta => "35",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

struct Table {
    kind: &'static str,
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

/// The tool's stdout.
pub struct Output {
    mode: OutputMode,
    out: Box<dyn Write>,
    tables: Vec<Table>,
}

impl Output {
    /// Output to stdout in `mode`.
    pub fn stdout(mode: OutputMode) -> Self {
        Self::new(mode, Box::new(io::stdout()))
    }

    /// Output to any writer (tests).
    pub fn new(mode: OutputMode, out: Box<dyn Write>) -> Self {
        Output {
            mode,
            out,
            tables: Vec::new(),
        }
    }

    /// Writes one record. Fails when stdout is closed or full.
    pub fn record<T: Record>(&mut self, record: &T) -> io::Result<()> {
        match self.mode {
            OutputMode::Records => self.line(&record.to_line()),
            OutputMode::Human => {
                self.row(T::TYPE, &T::human_header(), record.human_row());
                Ok(())
            }
        }
    }

    /// Adds a row to the human table named `kind`, for a tool whose table
    /// shows more than a record type's own columns (human mode).
    pub fn row(&mut self, kind: &'static str, header: &[&'static str], row: Vec<String>) {
        match self.tables.iter_mut().find(|t| t.kind == kind) {
            Some(table) => table.rows.push(row),
            None => self.tables.push(Table {
                kind,
                header: header.to_vec(),
                rows: vec![row],
            }),
        }
    }

    /// Writes a record the tool passes through unchanged.
    pub fn raw(&mut self, line: &str) -> io::Result<()> {
        self.line(line)
    }

    fn line(&mut self, line: &str) -> io::Result<()> {
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    /// Prints the collected tables (human mode) and flushes.
    pub fn finish(mut self) -> io::Result<()> {
        for table in std::mem::take(&mut self.tables) {
            let text = render(&table.header, &table.rows);
            self.out.write_all(text.as_bytes())?;
        }
        self.out.flush()
    }
}

fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(visible_width(cell));
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut text = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(visible_width(cell));
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// Characters a terminal shows: colour escapes (`ESC [ ... m`) take no room.
fn visible_width(cell: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in cell.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let text = render(&["ID", "SIZE"], &[vec!["a_long_id".into(), "1 B".into()]]);
        assert_eq!(text, "ID         SIZE\na_long_id  1 B\n");
    }

    #[test]
    fn colour_escapes_take_no_room() {
        let text = render(
            &["S", "M"],
            &[vec!["\x1b[32mok\x1b[0m".into(), "fine".into()]],
        );
        assert_eq!(text, "S   M\n\x1b[32mok\x1b[0m  fine\n");
    }
}
