//! `index.csv`: one row per patch, row k describing `patches[k]` (CONTRACTS 2).

use std::io::Write;
use std::path::Path;

use fovea_data::{Split, NUM_LESIONS};

use crate::error::{Result, StoreError};

/// The header of `index.csv`, in this order (more columns may follow in later versions).
pub const INDEX_HEADER: [&str; 18] = [
    "patch",
    "image_id",
    "split",
    "x",
    "y",
    "size",
    "kind",
    "ma",
    "he",
    "ex",
    "se",
    "ma_px",
    "he_px",
    "ex_px",
    "se_px",
    "fov_frac",
    "black",
    "centred_on",
];

/// How a patch was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatchKind {
    Grid,
    /// Centred on a connected component of a lesion mask.
    Lesion,
}

impl PatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PatchKind::Grid => "grid",
            PatchKind::Lesion => "lesion",
        }
    }
}

/// One patch's row.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchRow {
    pub patch: u64,
    pub image_id: String,
    pub split: Split,
    pub x: u32,
    pub y: u32,
    pub size: u32,
    pub kind: PatchKind,
    /// 0/1 labels, MA, HE, EX, SE, by the labelling rule.
    pub labels: [u8; NUM_LESIONS],
    /// Lesion pixels inside the label region, per lesion.
    pub px: [u32; NUM_LESIONS],
    /// Fraction of the patch inside the field of view.
    pub fov_frac: f32,
    pub black: bool,
    /// For lesion-centred patches: the lesion type whose component it is centred on.
    pub centred_on: Option<fovea_data::Lesion>,
}

impl PatchRow {
    /// Whether any lesion label is set.
    pub fn is_lesion(&self) -> bool {
        self.labels.iter().any(|&l| l != 0)
    }

    /// The row's cells, formatted as CONTRACTS 2 writes them.
    fn cells(&self) -> [String; 18] {
        let [a, b, c, d] = self.labels;
        let [pa, pb, pc, pd] = self.px;
        [
            self.patch.to_string(),
            self.image_id.clone(),
            self.split.to_string(),
            self.x.to_string(),
            self.y.to_string(),
            self.size.to_string(),
            self.kind.as_str().to_string(),
            a.to_string(),
            b.to_string(),
            c.to_string(),
            d.to_string(),
            pa.to_string(),
            pb.to_string(),
            pc.to_string(),
            pd.to_string(),
            format!("{:.4}", self.fov_frac),
            u8::from(self.black).to_string(),
            self.centred_on.map(|l| l.code()).unwrap_or("").to_string(),
        ]
    }
}

/// Streams rows to an `index.csv`, with the `csv` crate: a cell holding a comma, a quote or
/// a line break (an image id can) is quoted, so the file always reads back; every other
/// cell is written bare, as before.
pub struct IndexWriter<W: Write> {
    out: csv::Writer<W>,
}

impl<W: Write> IndexWriter<W> {
    pub fn new(out: W) -> std::io::Result<Self> {
        let mut out = csv::WriterBuilder::new().flexible(false).from_writer(out);
        out.write_record(INDEX_HEADER)?;
        Ok(IndexWriter { out })
    }
    pub fn write(&mut self, row: &PatchRow) -> std::io::Result<()> {
        Ok(self.out.write_record(row.cells())?)
    }
    /// Flushes the rows and hands back the writer.
    pub fn into_inner(self) -> std::io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// Reads an `index.csv`; any malformed row is an error naming the file and the row.
pub fn read_index(path: &Path) -> Result<Vec<PatchRow>> {
    let mut rdr = crate::store::csv_reader(csv::ReaderBuilder::new().flexible(true), path)?;
    let headers = rdr
        .headers()
        .map_err(|e| StoreError::corrupt(path, e))?
        .clone();
    let col = |name: &str| -> Result<usize> {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| StoreError::corrupt(path, format!("missing column '{name}'")))
    };
    let cols: Vec<usize> = INDEX_HEADER[..17]
        .iter()
        .map(|n| col(n))
        .collect::<Result<_>>()?;
    let centred = headers.iter().position(|h| h == "centred_on");
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| StoreError::corrupt(path, e))?;
        let line = i + 2;
        let get = |k: usize| rec.get(cols[k]).unwrap_or("");
        let bad = |k: usize| {
            StoreError::corrupt(
                path,
                format!("line {line}: bad {} '{}'", INDEX_HEADER[k], get(k)),
            )
        };
        let int = |k: usize| get(k).parse::<u64>().map_err(|_| bad(k));
        let small = |k: usize| -> Result<u32> { u32::try_from(int(k)?).map_err(|_| bad(k)) };
        let bit = |k: usize| match get(k) {
            "0" => Ok(0u8),
            "1" => Ok(1u8),
            _ => Err(bad(k)),
        };
        let kind = match get(6) {
            "grid" => PatchKind::Grid,
            "lesion" => PatchKind::Lesion,
            _ => return Err(bad(6)),
        };
        let fov_frac: f32 = get(15).parse().map_err(|_| bad(15))?;
        if !(0.0..=1.0).contains(&fov_frac) {
            return Err(bad(15));
        }
        let centred_on = match centred.and_then(|c| rec.get(c)).unwrap_or("") {
            "" => None,
            s => Some(
                fovea_data::LESIONS
                    .into_iter()
                    .find(|l| l.code() == s)
                    .ok_or_else(|| {
                        StoreError::corrupt(path, format!("line {line}: bad centred_on '{s}'"))
                    })?,
            ),
        };
        let row = PatchRow {
            patch: int(0)?,
            image_id: get(1).to_string(),
            split: Split::parse(get(2)).ok_or_else(|| bad(2))?,
            x: small(3)?,
            y: small(4)?,
            size: small(5)?,
            kind,
            labels: [bit(7)?, bit(8)?, bit(9)?, bit(10)?],
            px: [small(11)?, small(12)?, small(13)?, small(14)?],
            fov_frac,
            black: bit(16)? == 1,
            centred_on,
        };
        if row.patch != rows.len() as u64 {
            return Err(StoreError::corrupt(
                path,
                format!(
                    "line {line}: patch {} where {} was expected",
                    row.patch,
                    rows.len()
                ),
            ));
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: u64) -> PatchRow {
        PatchRow {
            patch: k,
            image_id: "IDRiD_01".into(),
            split: Split::Val,
            x: 128,
            y: 256,
            size: 128,
            kind: PatchKind::Lesion,
            labels: [1, 0, 1, 0],
            px: [3, 0, 77, 0],
            fov_frac: 0.75,
            black: false,
            centred_on: Some(fovea_data::Lesion::EX),
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.csv");
        let mut w = IndexWriter::new(Vec::new()).unwrap();
        w.write(&row(0)).unwrap();
        let mut r1 = row(1);
        r1.kind = PatchKind::Grid;
        r1.centred_on = None;
        r1.black = true;
        w.write(&r1).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert!(text.starts_with(
            "patch,image_id,split,x,y,size,kind,ma,he,ex,se,ma_px,he_px,ex_px,se_px,fov_frac,black"
        ));
        std::fs::write(&p, &text).unwrap();
        let rows = read_index(&p).unwrap();
        assert_eq!(rows, vec![row(0), r1]);
    }

    #[test]
    fn cells_are_written_bare_and_quoted_only_when_needed() {
        // The exact bytes of CONTRACTS 2 (as the hand-written writer produced them).
        let mut w = IndexWriter::new(Vec::new()).unwrap();
        w.write(&row(0)).unwrap();
        let mut r1 = row(1);
        (r1.kind, r1.centred_on, r1.black, r1.fov_frac) = (PatchKind::Grid, None, true, 0.0);
        r1.image_id = "eye, \"left\"".into();
        w.write(&r1).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(
            text,
            "patch,image_id,split,x,y,size,kind,ma,he,ex,se,ma_px,he_px,ex_px,se_px,fov_frac,\
             black,centred_on\n\
             0,IDRiD_01,val,128,256,128,lesion,1,0,1,0,3,0,77,0,0.7500,0,EX\n\
             1,\"eye, \"\"left\"\"\",val,128,256,128,grid,1,0,1,0,3,0,77,0,0.0000,1,\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.csv");
        std::fs::write(&p, &text).unwrap();
        assert_eq!(read_index(&p).unwrap(), vec![row(0), r1]);
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.csv");
        let header = INDEX_HEADER.join(",");
        for (body, what) in [
            ("0,a,train,0,0,8,grid,2,0,0,0,0,0,0,0,1.0,0,", "ma"),
            ("0,a,nowhere,0,0,8,grid,0,0,0,0,0,0,0,0,1.0,0,", "split"),
            ("0,a,train,-1,0,8,grid,0,0,0,0,0,0,0,0,1.0,0,", "x"),
            ("5,a,train,0,0,8,grid,0,0,0,0,0,0,0,0,1.0,0,", "expected"),
            ("0,a,train,0,0,8,grid,0,0,0", "line 2"),
        ] {
            std::fs::write(&p, format!("{header}\n{body}\n")).unwrap();
            let e = read_index(&p).unwrap_err().to_string();
            assert!(e.contains("index.csv") && e.contains(what), "{e}");
        }
        std::fs::write(&p, "patch,image_id\n").unwrap();
        assert!(read_index(&p)
            .unwrap_err()
            .to_string()
            .contains("missing column 'split'"));
    }
}
