//! Locating a lesion-segmentation dataset: IDRiD's download layout or a manifest CSV
//! (CONTRACTS 1), detected from what the folder holds.
//!
//! - **Manifest** (checked first): `DIR/manifest.csv` with header columns
//!   `id,image,ma,he,ex,se` in any order, extra columns allowed, optional `split`
//!   (`train`/`val`/`test`; an empty cell = no split). Header names are matched
//!   case-insensitively; a UTF-8 BOM is stripped and cells are trimmed. Paths are relative to
//!   DIR (absolute paths allowed); an empty mask cell = not annotated = all-zero mask. A
//!   missing column, an empty id or image cell, a duplicate id, an id that is not usable as a
//!   file name (`/`, `\`, control characters, `.`/`..`), a bad split name, a file that does
//!   not exist or a manifest without rows are errors naming the manifest (and the row).
//! - **IDRiD download**: DIR is, or contains, `A. Segmentation/` with
//!   `1. Original Images/{a. Training Set,b. Testing Set}/IDRiD_NN.jpg` and
//!   `2. All Segmentation Groundtruths/<set>/{1. Microaneurysms,2. Haemorrhages,
//!   3. Hard Exudates,4. Soft Exudates}/IDRiD_NN_{MA,HE,EX,SE}.tif`. Folder and file names are
//!   matched case-insensitively (`.jpg`/`.jpeg`, `.tif`/`.tiff`; `.png`/`.tif` photographs are
//!   accepted too), hidden files (`._IDRiD_01.jpg` from macOS) are skipped and `5. Optic Disc`
//!   is ignored. The set folder gives the split (train / test). A missing mask file means the
//!   lesion was not annotated (all-zero mask); a missing ground-truth folder for a set that
//!   has photographs is an error. Every other file in the ground-truth folders (a mask with
//!   another extension such as `IDRiD_03_HE.png`, a suffix such as `IDRiD_03_HE (1).tif`, a
//!   mask in another lesion's folder, a mask without its photograph, a stray folder) is
//!   ignored with a warning naming it and why, and listed in [`Dataset::ignored`].
//!
//! Records are sorted by id (string order). Files are only located here, not decoded.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::lesion::{Lesion, LESIONS, NUM_LESIONS};

/// Which split an image belongs to. Every patch of an image shares its image's split.
/// On a command line (feature `clap`) it takes the names and aliases of [`Split::parse`]
/// (give the argument `ignore_case = true` for its case-insensitivity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Split {
    #[cfg_attr(feature = "clap", value(alias = "training"))]
    Train,
    #[cfg_attr(feature = "clap", value(aliases = ["valid", "validation"]))]
    Val,
    #[cfg_attr(feature = "clap", value(alias = "testing"))]
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// `train`, `val` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    /// Parses `train`, `val`/`validation`, `test` (case-insensitive).
    pub fn parse(s: &str) -> Option<Split> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" | "training" => Some(Split::Train),
            "val" | "valid" | "validation" => Some(Split::Val),
            "test" | "testing" => Some(Split::Test),
            _ => None,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the dataset folder is organised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// IDRiD's download: `A. Segmentation/1. Original Images/...` with one TIFF per lesion.
    IdridDownload,
    /// `manifest.csv` with columns `id,image,ma,he,ex,se[,split]`.
    Manifest,
}

/// One photograph and where its lesion masks are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRecord {
    /// Image id, e.g. `IDRiD_03`. Unique within a dataset.
    pub id: String,
    /// Absolute (or dataset-relative resolved) path of the photograph.
    pub image: PathBuf,
    /// Mask per lesion in MA, HE, EX, SE order; `None` = not annotated = all-zero mask.
    pub masks: [Option<PathBuf>; NUM_LESIONS],
    /// The split the dataset itself gives (IDRiD set folder or manifest `split` column).
    /// `Val` may only come from a manifest.
    pub split: Option<Split>,
}

/// A dataset: its records sorted by id.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The folder that was opened.
    pub root: PathBuf,
    pub layout: Layout,
    /// Records in id order (ids compared as strings).
    pub records: Vec<ImageRecord>,
    /// Files of the ground-truth folders that are not used (IDRiD layout), with why; each
    /// was logged as a warning when the dataset was opened.
    pub ignored: Vec<(PathBuf, String)>,
}

impl Dataset {
    /// Opens `dir`, detecting its layout. `dir` may be the folder holding
    /// `A. Segmentation/`, `A. Segmentation/` itself, or a folder with `manifest.csv`.
    pub fn open(dir: &Path) -> Result<Dataset> {
        let meta = std::fs::metadata(dir).map_err(|e| DataError::io(dir, e))?;
        if !meta.is_dir() {
            return Err(DataError::Invalid {
                path: dir.to_path_buf(),
                reason: "not a folder (expected a dataset folder)".into(),
            });
        }
        let manifest = dir.join(MANIFEST);
        let mut ignored = Vec::new();
        let (layout, records) = if manifest.exists() {
            (Layout::Manifest, read_manifest(dir, &manifest)?)
        } else if let Some(seg) = find_idrid_root(dir)? {
            (Layout::IdridDownload, read_idrid(&seg, &mut ignored)?)
        } else {
            return Err(DataError::UnknownLayout {
                path: dir.to_path_buf(),
            });
        };
        tracing::debug!(
            root = %dir.display(),
            ?layout,
            images = records.len(),
            "dataset opened"
        );
        Ok(Dataset {
            root: dir.to_path_buf(),
            layout,
            records,
            ignored,
        })
    }

    /// Whether every record carries a split from the dataset itself.
    pub fn has_split(&self) -> bool {
        !self.records.is_empty() && self.records.iter().all(|r| r.split.is_some())
    }
}

/// The manifest's file name inside a dataset folder.
pub const MANIFEST: &str = "manifest.csv";

/// Largest manifest accepted, in bytes.
const MAX_MANIFEST_BYTES: u64 = 256 << 20;

// ---------------------------------------------------------------------------------------
// Manifest layout

fn manifest_err(manifest: &Path, reason: impl Into<String>) -> DataError {
    DataError::Manifest {
        path: manifest.to_path_buf(),
        reason: reason.into(),
    }
}

/// Why an id cannot be used (ids become file and folder names downstream).
fn bad_id_reason(id: &str) -> Option<&'static str> {
    if id == "." || id == ".." {
        Some("is not a usable name")
    } else if id.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if id.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

fn read_manifest(root: &Path, manifest: &Path) -> Result<Vec<ImageRecord>> {
    use std::io::Read;
    let file = crate::io::open_regular(manifest)?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(manifest, e))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(manifest_err(
            manifest,
            format!("larger than {MAX_MANIFEST_BYTES} bytes"),
        ));
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| manifest_err(manifest, format!("cannot read the header: {e}")))?
        .clone();

    // Column positions, header names compared case-insensitively.
    let mut columns: HashMap<String, usize> = HashMap::new();
    for (i, name) in headers.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        if columns.insert(name.clone(), i).is_some() {
            return Err(manifest_err(
                manifest,
                format!("column '{name}' appears more than once in the header"),
            ));
        }
    }
    let required = ["id", "image", "ma", "he", "ex", "se"];
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|c| !columns.contains_key(*c))
        .collect();
    if !missing.is_empty() {
        return Err(manifest_err(
            manifest,
            format!(
                "missing column{} {} (the header needs id,image,ma,he,ex,se; found '{}')",
                if missing.len() > 1 { "s" } else { "" },
                missing
                    .iter()
                    .map(|c| format!("'{c}'"))
                    .collect::<Vec<_>>()
                    .join(", "),
                headers.iter().collect::<Vec<_>>().join(",")
            ),
        ));
    }
    let col = |name: &str| columns.get(name).copied().unwrap_or(usize::MAX);
    let (id_col, image_col, split_col) = (col("id"), col("image"), columns.get("split").copied());
    let mask_cols = LESIONS.map(|l| col(l.column()));

    let mut records: Vec<ImageRecord> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for row in reader.records() {
        let row = row.map_err(|e| manifest_err(manifest, format!("malformed CSV: {e}")))?;
        let line = row.position().map_or(0, |p| p.line());
        let cell = |i: usize| row.get(i).unwrap_or("").trim();

        let id = cell(id_col);
        if id.is_empty() {
            return Err(manifest_err(
                manifest,
                format!("line {line}: empty 'id' cell"),
            ));
        }
        if let Some(reason) = bad_id_reason(id) {
            return Err(manifest_err(
                manifest,
                format!("line {line}: id '{id}' {reason}"),
            ));
        }
        if let Some(first) = seen.insert(id.to_string(), line) {
            return Err(manifest_err(
                manifest,
                format!("duplicate id '{id}' on lines {first} and {line}"),
            ));
        }
        let resolve = |column: &str, value: &str| -> Result<PathBuf> {
            let target = root.join(value);
            let problem = match crate::io::not_regular(&target) {
                _ if target.is_file() => return Ok(target),
                Some(what) => what,
                None => "does not exist",
            };
            Err(DataError::MissingFile {
                manifest: manifest.to_path_buf(),
                id: id.to_string(),
                column: column.to_string(),
                target,
                problem,
            })
        };
        let image_cell = cell(image_col);
        if image_cell.is_empty() {
            return Err(manifest_err(
                manifest,
                format!("line {line}, row for '{id}': empty 'image' cell"),
            ));
        }
        let image = resolve("image", image_cell)?;
        let mut masks: [Option<PathBuf>; NUM_LESIONS] = Default::default();
        for ((slot, lesion), &i) in masks.iter_mut().zip(LESIONS).zip(mask_cols.iter()) {
            let value = cell(i);
            if !value.is_empty() {
                *slot = Some(resolve(lesion.column(), value)?);
            }
        }
        let split = match split_col.map(cell) {
            None | Some("") => None,
            Some(value) => Some(Split::parse(value).ok_or_else(|| {
                manifest_err(
                    manifest,
                    format!(
                        "line {line}, row for '{id}': split '{value}' is not train, val or test"
                    ),
                )
            })?),
        };
        records.push(ImageRecord {
            id: id.to_string(),
            image,
            masks,
            split,
        });
    }
    if records.is_empty() {
        return Err(DataError::Invalid {
            path: manifest.to_path_buf(),
            reason: "the manifest lists no images".into(),
        });
    }
    records.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(records)
}

// ---------------------------------------------------------------------------------------
// IDRiD download layout

const SEGMENTATION: &str = "A. Segmentation";
const ORIGINAL_IMAGES: &str = "1. Original Images";
const GROUNDTRUTHS: &str = "2. All Segmentation Groundtruths";
const SETS: [(&str, Split); 2] = [
    ("a. Training Set", Split::Train),
    ("b. Testing Set", Split::Test),
];
/// Accepted folder names per lesion, lower case, in MA, HE, EX, SE order.
const LESION_FOLDERS: [&[&str]; NUM_LESIONS] = [
    &["1. microaneurysms"],
    &["2. haemorrhages", "2. hemorrhages"],
    &["3. hard exudates"],
    &["4. soft exudates"],
];
/// The optic-disc folder, present in IDRiD's download and not used by Fovea.
const OPTIC_DISC: &str = "5. optic disc";
const PHOTO_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "tif", "tiff"];
const MASK_EXTENSIONS: [&str; 2] = ["tif", "tiff"];

/// The entries of a folder: (file name, path, is a folder). Hidden entries and names that
/// are not UTF-8 are skipped.
fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let is_dir = path.is_dir();
        out.push((name, path, is_dir));
    }
    out.sort();
    Ok(out)
}

/// The sub-folder of `dir` named one of `names` (lower case), compared case-insensitively;
/// an exact match wins.
fn find_subdir(dir: &Path, names: &[&str]) -> Result<Option<PathBuf>> {
    let entries = list_dir(dir)?;
    let mut found = None;
    for (name, path, is_dir) in entries {
        if !is_dir || !names.contains(&name.to_lowercase().as_str()) {
            continue;
        }
        let exact = names.iter().any(|n| *n == name);
        if found.is_none() || exact {
            found = Some(path);
        }
    }
    Ok(found)
}

/// `dir` itself when it holds `1. Original Images/`, else its `A. Segmentation/` sub-folder.
fn find_idrid_root(dir: &Path) -> Result<Option<PathBuf>> {
    if find_subdir(dir, &[&ORIGINAL_IMAGES.to_lowercase()])?.is_some() {
        return Ok(Some(dir.to_path_buf()));
    }
    find_subdir(dir, &[&SEGMENTATION.to_lowercase()])
}

/// Splits `name` into (stem, lower-case extension).
fn split_ext(name: &str) -> Option<(&str, String)> {
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty()).then(|| (stem, ext.to_ascii_lowercase()))
}

fn invalid(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Records a file of the ground-truth folders that is not used, with a warning.
fn ignore(ignored: &mut Vec<(PathBuf, String)>, path: PathBuf, reason: String) {
    tracing::warn!("{}: {reason}: ignored", path.display());
    ignored.push((path, reason));
}

/// Entries of a ground-truth set folder that are not one of the lesion folders (or
/// `5. Optic Disc`, which Fovea does not use).
fn note_foreign_entries(gt_set: &Path, ignored: &mut Vec<(PathBuf, String)>) -> Result<()> {
    for (name, path, is_dir) in list_dir(gt_set)? {
        let lower = name.to_lowercase();
        let known = LESION_FOLDERS
            .iter()
            .any(|names| names.contains(&lower.as_str()))
            || lower == OPTIC_DISC;
        if !(is_dir && known) {
            let reason = "not one of the lesion folders (1. Microaneurysms, 2. Haemorrhages, \
                          3. Hard Exudates, 4. Soft Exudates)";
            ignore(ignored, path, reason.to_string());
        }
    }
    Ok(())
}

/// The masks of one lesion folder into `set_records`; every other entry is ignored with a
/// warning naming why (another extension, a name without `_XX`, a photograph that is not
/// there).
fn scan_lesion_folder(
    lesion: Lesion,
    slot: usize,
    lesion_dir: &Path,
    set_records: &mut BTreeMap<String, ImageRecord>,
    ignored: &mut Vec<(PathBuf, String)>,
) -> Result<()> {
    let suffix = format!("_{}", lesion.code().to_lowercase());
    let pattern = format!("IDRiD_NN_{}.tif", lesion.code());
    for (name, path, is_dir) in list_dir(lesion_dir)? {
        if is_dir {
            ignore(ignored, path, format!("a folder, not a mask ({pattern})"));
            continue;
        }
        let mask_name = split_ext(&name).filter(|(_, e)| MASK_EXTENSIONS.contains(&e.as_str()));
        let Some((stem, _)) = mask_name else {
            ignore(
                ignored,
                path,
                format!("not a .tif mask (expected {pattern})"),
            );
            continue;
        };
        let stem = stem.to_lowercase();
        let Some(key) = stem.strip_suffix(&suffix) else {
            let reason = format!(
                "name does not end in _{} (expected {pattern} in the {} folder)",
                lesion.code(),
                lesion.name()
            );
            ignore(ignored, path, reason);
            continue;
        };
        let Some(record) = set_records.get_mut(key) else {
            ignore(ignored, path, "mask without a photograph".to_string());
            continue;
        };
        if let Some(other) = &record.masks[slot] {
            return Err(invalid(
                &path,
                format!(
                    "two {} masks for '{}' (also {})",
                    lesion.code(),
                    record.id,
                    other.display()
                ),
            ));
        }
        record.masks[slot] = Some(path);
    }
    Ok(())
}

fn read_idrid(seg: &Path, ignored: &mut Vec<(PathBuf, String)>) -> Result<Vec<ImageRecord>> {
    let Some(originals) = find_subdir(seg, &[&ORIGINAL_IMAGES.to_lowercase()])? else {
        return Err(invalid(
            seg,
            format!("IDRiD layout without '{ORIGINAL_IMAGES}/'"),
        ));
    };
    let groundtruths = find_subdir(seg, &[&GROUNDTRUTHS.to_lowercase()])?;
    // Keyed by lower-case id so that file names match case-insensitively.
    let mut records: BTreeMap<String, ImageRecord> = BTreeMap::new();
    for (set_name, split) in SETS {
        let Some(photo_dir) = find_subdir(&originals, &[&set_name.to_lowercase()])? else {
            continue;
        };
        let mut set_records: BTreeMap<String, ImageRecord> = BTreeMap::new();
        for (name, path, is_dir) in list_dir(&photo_dir)? {
            let Some((stem, ext)) = split_ext(&name) else {
                continue;
            };
            if is_dir || !PHOTO_EXTENSIONS.contains(&ext.as_str()) {
                continue;
            }
            let key = stem.to_lowercase();
            if let Some(other) = records.get(&key).or(set_records.get(&key)) {
                return Err(invalid(
                    &path,
                    format!(
                        "image id '{stem}' appears twice (also {})",
                        other.image.display()
                    ),
                ));
            }
            set_records.insert(
                key,
                ImageRecord {
                    id: stem.to_string(),
                    image: path,
                    masks: Default::default(),
                    split: Some(split),
                },
            );
        }
        if set_records.is_empty() {
            continue;
        }
        let gt_set = match &groundtruths {
            Some(gt) => find_subdir(gt, &[&set_name.to_lowercase()])?,
            None => None,
        };
        let Some(gt_set) = gt_set else {
            return Err(invalid(
                seg,
                format!(
                    "'{ORIGINAL_IMAGES}/{set_name}' holds photographs but \
                     '{GROUNDTRUTHS}/{set_name}/' (their masks) is missing"
                ),
            ));
        };
        for ((lesion, folder_names), slot) in LESIONS.iter().zip(LESION_FOLDERS).zip(0..NUM_LESIONS)
        {
            let Some(lesion_dir) = find_subdir(&gt_set, folder_names)? else {
                tracing::warn!(
                    folder = %gt_set.display(),
                    lesion = lesion.code(),
                    "no '{}' folder: no {} masks for this set",
                    folder_names[0],
                    lesion.name()
                );
                continue;
            };
            scan_lesion_folder(*lesion, slot, &lesion_dir, &mut set_records, ignored)?;
        }
        note_foreign_entries(&gt_set, ignored)?;
        records.extend(set_records);
    }
    if records.is_empty() {
        return Err(invalid(
            &originals,
            "no photographs found in 'a. Training Set/' or 'b. Testing Set/'",
        ));
    }
    let mut records: Vec<ImageRecord> = records.into_values().collect();
    records.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(records)
}
