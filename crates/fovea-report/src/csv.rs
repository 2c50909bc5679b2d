//! A small CSV reader for the run's tables (`metrics.csv`, `val_ranking.csv`,
//! `predictions.csv`, an ablation table): a header line, then rows of the same number of
//! fields, RFC-4180 quoting within a line, blank lines ignored. Errors name the file and
//! the line (1-based, the header is line 1).

use std::path::{Path, PathBuf};

use crate::error::{ReportError, Result};

/// A parsed CSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Where it was read from (for error messages).
    pub path: PathBuf,
    /// Column names.
    pub header: Vec<String>,
    /// Rows as (line number, fields); every row has `header.len()` fields.
    pub rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    /// Parses `text`, read from `path`. A row with more or fewer fields than the header
    /// is an error.
    pub fn parse(path: &Path, text: &str) -> Result<Table> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty());
        let (hline, head) = lines
            .next()
            .ok_or_else(|| ReportError::malformed(path, "empty file: no header line"))?;
        let header: Vec<String> = split_fields(head)
            .map_err(|r| ReportError::malformed(path, format!("line {hline}: {r}")))?
            .into_iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut rows = Vec::new();
        for (n, line) in lines {
            let fields = split_fields(line)
                .map_err(|r| ReportError::malformed(path, format!("line {n}: {r}")))?;
            if fields.len() != header.len() {
                return Err(ReportError::malformed(
                    path,
                    format!(
                        "line {n}: {} fields, but the header has {}",
                        fields.len(),
                        header.len()
                    ),
                ));
            }
            rows.push((n, fields));
        }
        Ok(Table {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    /// Index of each named column; an error naming the first one missing.
    pub fn columns<const N: usize>(&self, names: [&str; N]) -> Result<[usize; N]> {
        let mut out = [0; N];
        for (slot, name) in out.iter_mut().zip(names) {
            *slot = self.header.iter().position(|h| h == name).ok_or_else(|| {
                ReportError::malformed(&self.path, format!("no column '{name}' in the header"))
            })?;
        }
        Ok(out)
    }

    /// Field `col` of the row at `line` parsed as a float (`NaN`, `inf` accepted).
    pub fn float(&self, line: usize, fields: &[String], col: usize) -> Result<f64> {
        let s = fields[col].trim();
        s.parse::<f64>()
            .map_err(|_| self.bad(line, col, s, "a number"))
    }

    /// Field `col` of the row at `line` parsed as an unsigned integer.
    pub fn uint(&self, line: usize, fields: &[String], col: usize) -> Result<u64> {
        let s = fields[col].trim();
        s.parse::<u64>()
            .map_err(|_| self.bad(line, col, s, "a non-negative integer"))
    }

    /// The error for a field that is not what its column needs.
    pub fn bad(&self, line: usize, col: usize, value: &str, expected: &str) -> ReportError {
        ReportError::malformed(
            &self.path,
            format!(
                "line {line}: {}: {value:?} is not {expected}",
                self.header[col]
            ),
        )
    }
}

/// Splits one line into fields, undoing RFC-4180 quoting.
fn split_fields(line: &str) -> std::result::Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let (mut quoted, mut at_start) = (false, true);
    while let Some(ch) = chars.next() {
        if quoted {
            if ch == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',')) {
                        return Err("text after a closing quote");
                    }
                }
            } else {
                field.push(ch);
            }
            continue;
        }
        match ch {
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
                continue;
            }
            '"' if at_start => quoted = true,
            '"' => return Err("a quote inside an unquoted field"),
            _ => field.push(ch),
        }
        at_start = false;
    }
    if quoted {
        return Err("unterminated quote");
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_blank_lines_and_numbers() {
        let p = Path::new("t.csv");
        let t = Table::parse(p, "a,b,c\r\n1,\"x, \"\"y\"\"\",NaN\n\n2,,inf\n").unwrap();
        assert_eq!(t.header, ["a", "b", "c"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].1[1], "x, \"y\"");
        assert_eq!(t.rows[1].0, 4);
        let [a, c] = t.columns(["a", "c"]).unwrap();
        let (line, f) = &t.rows[0];
        assert_eq!(t.uint(*line, f, a).unwrap(), 1);
        assert!(t.float(*line, f, c).unwrap().is_nan());
        assert_eq!(
            t.float(t.rows[1].0, &t.rows[1].1, c).unwrap(),
            f64::INFINITY
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let p = Path::new("/x/t.csv");
        let e = Table::parse(p, "a,b\n1,2\n3\n").unwrap_err().to_string();
        assert_eq!(e, "/x/t.csv: line 3: 1 fields, but the header has 2");
        let e = Table::parse(p, "").unwrap_err().to_string();
        assert!(e.starts_with("/x/t.csv: empty file"));
        let e = Table::parse(p, "a\n\"x\n").unwrap_err().to_string();
        assert!(e.contains("line 2: unterminated quote"), "{e}");
        let t = Table::parse(p, "a,b\nx,2\n").unwrap();
        assert!(t
            .columns(["c"])
            .unwrap_err()
            .to_string()
            .contains("no column 'c'"));
        let e = t.float(2, &t.rows[0].1, 0).unwrap_err().to_string();
        assert_eq!(e, "/x/t.csv: line 2: a: \"x\" is not a number");
    }
}
