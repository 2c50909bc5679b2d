//! Integration tests of dataset detection and decoding (CONTRACTS 1).
//!
//! - The real IDRiD sample (`shared/data`, skipped with a message when absent): the three
//!   images in IDRiD's download layout and the 62-image manifest dataset give exactly the
//!   lesion pixel counts of `lesion_pixels.csv`, and the PNG and TIFF masks agree pixel for
//!   pixel.
//! - Malformed datasets and files made in temporary folders: every error names the file.
//! - Property tests: arbitrary or mutated bytes as photographs and masks, arbitrary text as a
//!   manifest, never panic.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use fovea_data::testdata::{idrid_original_layout, idrid_sample};
use fovea_data::{load_sample, read_mask, read_rgb, DataError, Dataset, Layout, Mask, Split};
use image::{ImageBuffer, Luma, Rgb};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Helpers

/// `lesion_pixels.csv`: id -> (official split, [MA, HE, EX, SE] lesion pixels).
fn lesion_pixels(sample: &Path) -> HashMap<String, (String, [u64; 4])> {
    let mut reader = csv::Reader::from_path(sample.join("lesion_pixels.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (id, split) = (col("id"), col("official_split"));
    let px = ["ma_px", "he_px", "ex_px", "se_px"].map(col);
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let counts = px.map(|i| r[i].parse::<u64>().unwrap());
            (r[id].to_string(), (r[split].to_string(), counts))
        })
        .collect()
}

fn ones(mask: &Mask) -> u64 {
    assert!(mask.iter().all(|&v| v <= 1), "mask values must be 0/1");
    mask.iter().map(|&v| u64::from(v)).sum()
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = ImageBuffer::from_fn(w, h, |x, y| {
        Luma([if (x + y) % 3 == 0 { 255u8 } else { 0 }])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn rgb_png_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = ImageBuffer::from_fn(w, h, |x, y| Rgb([x as u8 * 7, y as u8 * 5, 90u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = ImageBuffer::from_fn(w, h, |x, y| Rgb([x as u8 * 3, y as u8 * 4, (x ^ y) as u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// An LZW-compressed RGBA TIFF whose alpha is 0 on lesion pixels.
fn rgba_tiff_bytes(w: u32, h: u32) -> Vec<u8> {
    let data: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            if i % 4 == 0 {
                [255, 0, 0, 0]
            } else {
                [0, 0, 0, 255]
            }
        })
        .collect();
    let mut out = std::io::Cursor::new(Vec::new());
    tiff::encoder::TiffEncoder::new(&mut out)
        .unwrap()
        .with_compression(tiff::encoder::Compression::Lzw)
        .write_image::<tiff::encoder::colortype::RGBA8>(w, h, &data)
        .unwrap();
    out.into_inner()
}

/// A hand-made uncompressed 1-bit palette TIFF (little-endian, one strip), like IDRiD's
/// masks: pixel (x, y) has index 1 where `(x + 2y) % 3 == 0`.
fn palette_tiff_bytes(w: u32, h: u32) -> Vec<u8> {
    let row = w.div_ceil(8) as usize;
    let mut data = vec![0u8; row * h as usize];
    for y in 0..h as usize {
        for x in 0..w as usize {
            if (x + 2 * y) % 3 == 0 {
                data[y * row + x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&data);
    if out.len() % 2 == 1 {
        out.push(0);
    }
    let colormap_at = out.len() as u32;
    for v in [0u16, 65535, 0, 0, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let ifd = out.len() as u32;
    out[4..8].copy_from_slice(&ifd.to_le_bytes());
    let entries: [(u16, u16, u32, u32); 10] = [
        (256, 4, 1, w),
        (257, 4, 1, h),
        (258, 3, 1, 1),
        (259, 3, 1, 1),
        (262, 3, 1, 3),
        (273, 4, 1, 8),
        (277, 3, 1, 1),
        (278, 4, 1, h),
        (279, 4, 1, data.len() as u32),
        (320, 3, 6, colormap_at),
    ];
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, count, value) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out
}

/// A manifest dataset in `dir`: `manifest.csv` with the given body (header included).
fn manifest_dataset(dir: &Path, manifest: &str) -> PathBuf {
    write(&dir.join("manifest.csv"), manifest.as_bytes())
}

fn assert_names(err: &DataError, parts: &[&str]) {
    let msg = err.to_string();
    for part in parts {
        assert!(msg.contains(part), "error '{msg}' should name '{part}'");
    }
}

// ---------------------------------------------------------------------------------------
// The real IDRiD sample

#[test]
fn idrid_original_layout_gives_the_published_lesion_pixels() {
    let Some(orig) = idrid_original_layout() else {
        return;
    };
    let Some(sample) = idrid_sample() else {
        return;
    };
    let expected = lesion_pixels(&sample);
    let dataset = Dataset::open(&orig).unwrap();
    assert_eq!(dataset.layout, Layout::IdridDownload);
    let ids: Vec<&str> = dataset.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["IDRiD_03", "IDRiD_43", "IDRiD_81"]);
    let splits: Vec<_> = dataset.records.iter().map(|r| r.split).collect();
    assert_eq!(
        splits,
        [Some(Split::Train), Some(Split::Train), Some(Split::Test)]
    );
    assert!(dataset.has_split());
    let present: Vec<[bool; 4]> = dataset
        .records
        .iter()
        .map(|r| r.masks.each_ref().map(|m| m.is_some()))
        .collect();
    assert_eq!(
        present,
        [
            [true, true, true, true],
            [true, false, true, false],
            [true, true, true, false]
        ]
    );

    // `A. Segmentation/` itself opens to the same records.
    let inner = Dataset::open(&orig.join("A. Segmentation")).unwrap();
    assert_eq!(inner.records, dataset.records);

    for record in &dataset.records {
        let sample = load_sample(record).unwrap();
        assert_eq!(sample.id, record.id);
        assert_eq!(sample.rgb.dimensions(), (4288, 2848));
        let counts = sample.masks.each_ref().map(ones);
        let (split, want) = &expected[&record.id];
        assert_eq!(&counts, want, "{}: MA, HE, EX, SE lesion pixels", record.id);
        assert_eq!(Some(split.as_str()), record.split.map(|s| s.as_str()));
        for mask in &sample.masks {
            assert_eq!(mask.dimensions(), (4288, 2848));
        }
    }
}

#[test]
fn idrid_manifest_sample_opens_in_id_order() {
    let Some(sample) = idrid_sample() else {
        return;
    };
    let dataset = Dataset::open(&sample).unwrap();
    assert_eq!(dataset.layout, Layout::Manifest);
    assert_eq!(dataset.records.len(), 62);
    let ids: Vec<&str> = dataset.records.iter().map(|r| r.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted);
    assert_eq!(ids[0], "IDRiD_01");
    assert_eq!(ids[61], "IDRiD_81");
    assert!(!dataset.has_split(), "this manifest has no split column");
    let expected = lesion_pixels(&sample);
    for record in &dataset.records {
        assert!(record.image.is_file());
        // A mask is listed exactly where lesion_pixels.csv counts lesion pixels.
        let (_, counts) = &expected[&record.id];
        for (mask, &count) in record.masks.iter().zip(counts) {
            assert_eq!(mask.is_some(), count > 0, "{}", record.id);
        }
    }
    let r43 = &dataset.records[ids.iter().position(|&i| i == "IDRiD_43").unwrap()];
    assert!(r43.masks[1].is_none() && r43.masks[3].is_none());
}

#[test]
fn idrid_png_and_tiff_masks_are_pixel_identical() {
    let Some(orig) = idrid_original_layout() else {
        return;
    };
    let Some(sample) = idrid_sample() else {
        return;
    };
    let expected = lesion_pixels(&sample);
    let tiffs = Dataset::open(&orig).unwrap();
    let pngs = Dataset::open(&sample).unwrap();
    for tiff_record in &tiffs.records {
        let png_record = pngs
            .records
            .iter()
            .find(|r| r.id == tiff_record.id)
            .unwrap();
        let (_, want) = &expected[&tiff_record.id];
        for (k, (t, p)) in tiff_record.masks.iter().zip(&png_record.masks).enumerate() {
            assert_eq!(t.is_some(), p.is_some(), "{} lesion {k}", tiff_record.id);
            let (Some(t), Some(p)) = (t, p) else {
                continue;
            };
            let (t, p) = (read_mask(t).unwrap(), read_mask(p).unwrap());
            assert_eq!(ones(&p), want[k], "{} lesion {k} (PNG)", tiff_record.id);
            assert!(
                t == p,
                "{} lesion {k}: TIFF and PNG masks differ",
                tiff_record.id
            );
        }
    }
}

#[test]
fn idrid_truncated_photograph_is_an_error() {
    let Some(sample) = idrid_sample() else {
        return;
    };
    let bytes = fs::read(sample.join("images/IDRiD_03.jpg")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, cut) in [
        ("first10k.jpg", 10 * 1024),
        ("half.jpg", bytes.len() / 2),
        ("nearly.jpg", bytes.len() - 100),
    ] {
        let path = write(&dir.path().join(name), &bytes[..cut]);
        let err = read_rgb(&path).unwrap_err();
        assert!(matches!(err, DataError::Decode { .. }), "{err}");
        assert_names(&err, &[name]);
    }
}

// ---------------------------------------------------------------------------------------
// Synthetic IDRiD download layouts

/// A tiny IDRiD download layout under `dir`: photographs 8x6, masks of the same size.
fn tiny_idrid(dir: &Path) -> PathBuf {
    let seg = dir.join("A. Segmentation");
    let photos = seg.join("1. Original Images");
    let gt = seg.join("2. All Segmentation Groundtruths");
    let photo = jpeg_bytes(8, 6);
    let mask = palette_tiff_bytes(8, 6);
    write(&photos.join("a. Training Set/IDRiD_02.jpg"), &photo);
    write(&photos.join("a. Training Set/IDRiD_01.JPG"), &photo);
    write(
        &photos.join("a. Training Set/._IDRiD_01.jpg"),
        b"AppleDouble junk",
    );
    write(&photos.join("b. Testing Set/IDRiD_55.jpeg"), &photo);
    let train = gt.join("a. Training Set");
    write(&train.join("1. Microaneurysms/IDRiD_01_MA.tif"), &mask);
    write(&train.join("1. Microaneurysms/IDRiD_02_MA.TIF"), &mask);
    write(&train.join("3. Hard Exudates/IDRiD_01_EX.tiff"), &mask);
    write(&train.join("5. Optic Disc/IDRiD_01_OD.tif"), &mask);
    write(&train.join("2. Haemorrhages/IDRiD_99_HE.tif"), &mask); // no photograph
    write(&train.join("2. Haemorrhages/notes.txt"), b"ignored");
    let test = gt.join("b. Testing Set");
    write(&test.join("4. Soft Exudates/IDRiD_55_SE.tif"), &mask);
    fs::create_dir_all(test.join("1. Microaneurysms")).unwrap();
    seg
}

#[test]
fn synthetic_idrid_layout() {
    let dir = tempfile::tempdir().unwrap();
    let seg = tiny_idrid(dir.path());
    for root in [dir.path(), seg.as_path()] {
        let dataset = Dataset::open(root).unwrap();
        assert_eq!(dataset.layout, Layout::IdridDownload);
        assert_eq!(dataset.root, root);
        let got: Vec<(&str, Option<Split>, [bool; 4])> = dataset
            .records
            .iter()
            .map(|r| {
                (
                    r.id.as_str(),
                    r.split,
                    r.masks.each_ref().map(|m| m.is_some()),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("IDRiD_01", Some(Split::Train), [true, false, true, false]),
                ("IDRiD_02", Some(Split::Train), [true, false, false, false]),
                ("IDRiD_55", Some(Split::Test), [false, false, false, true]),
            ]
        );
        for record in &dataset.records {
            let sample = load_sample(record).unwrap();
            let counts = sample.masks.each_ref().map(ones);
            let want = record
                .masks
                .each_ref()
                .map(|m| if m.is_some() { 16 } else { 0 });
            assert_eq!(counts, want, "{}", record.id);
        }
    }
}

#[test]
fn idrid_layout_errors() {
    let dir = tempfile::tempdir().unwrap();
    let seg = tiny_idrid(dir.path());
    // Same id twice in one set.
    let dup = seg.join("1. Original Images/b. Testing Set/IDRiD_01.jpg");
    write(&dup, &jpeg_bytes(8, 6));
    let err = Dataset::open(dir.path()).unwrap_err();
    assert_names(&err, &["IDRiD_01"]);
    fs::remove_file(&dup).unwrap();

    // Photographs without any ground-truth folder for their set.
    fs::rename(
        seg.join("2. All Segmentation Groundtruths/b. Testing Set"),
        dir.path().join("moved"),
    )
    .unwrap();
    let err = Dataset::open(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Invalid { .. }), "{err}");
    assert_names(&err, &["b. Testing Set"]);
}

// ---------------------------------------------------------------------------------------
// Manifest datasets

#[test]
fn manifest_parsing_details() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("img/a.png"), &rgb_png_bytes(5, 4));
    write(&d.join("img/b.jpg"), &jpeg_bytes(5, 4));
    write(&d.join("m/a_ma.png"), &png_bytes(5, 4));
    let abs_mask = write(&d.join("abs/b_ex.tif"), &palette_tiff_bytes(5, 4));
    // BOM, upper-case header, reordered and extra columns, padded cells, absolute path,
    // blank split cell, rows out of order.
    let text = format!(
        "\u{feff}note, SE ,ex,he,ma,image,id,split\n\
         x,, {} ,, ,img/b.jpg, b ,\n\
         y,,,, m/a_ma.png , img/a.png ,a, Val\n",
        abs_mask.display()
    );
    manifest_dataset(d, &text);
    let dataset = Dataset::open(d).unwrap();
    assert_eq!(dataset.layout, Layout::Manifest);
    let ids: Vec<&str> = dataset.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    let (a, b) = (&dataset.records[0], &dataset.records[1]);
    assert_eq!(a.image, d.join("img/a.png"));
    assert_eq!(a.masks, [Some(d.join("m/a_ma.png")), None, None, None]);
    assert_eq!(a.split, Some(Split::Val));
    assert_eq!(b.masks, [None, None, Some(abs_mask), None]);
    assert_eq!(b.split, None);
    assert!(!dataset.has_split());

    let sa = load_sample(a).unwrap();
    assert_eq!(sa.rgb.dimensions(), (5, 4));
    assert_eq!(sa.masks.each_ref().map(ones), [7, 0, 0, 0]);
    let sb = load_sample(b).unwrap();
    assert_eq!(sb.masks.each_ref().map(ones), [0, 0, 7, 0]);
}

#[test]
fn manifest_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("a.png"), &rgb_png_bytes(4, 4));
    write(&d.join("a_ma.png"), &png_bytes(4, 4));
    let header = "id,image,ma,he,ex,se";
    let cases: &[(&str, &[&str])] = &[
        // Missing column.
        ("id,image,ma,he,se\na,a.png,,,\n", &["manifest.csv", "'ex'"]),
        ("image,ma,he,ex,se\na.png,,,,\n", &["manifest.csv", "'id'"]),
        // Duplicate id.
        (
            &format!("{header}\na,a.png,,,,\nb,a.png,,,,\na,a.png,,,,\n"),
            &["manifest.csv", "duplicate id 'a'"],
        ),
        // Bad split value.
        (
            "id,image,ma,he,ex,se,split\na,a.png,,,,,tset\n",
            &["manifest.csv", "'tset'", "'a'"],
        ),
        // Empty id / image cells.
        (
            &format!("{header}\n,a.png,,,,\n"),
            &["manifest.csv", "empty 'id'"],
        ),
        (
            &format!("{header}\na,,,,,\n"),
            &["manifest.csv", "empty 'image'"],
        ),
        // An id that cannot be a folder name.
        (
            &format!("{header}\n../x,a.png,,,,\n"),
            &["manifest.csv", "../x"],
        ),
        // Ragged row.
        (&format!("{header}\na,a.png,,\n"), &["manifest.csv"]),
    ];
    for (text, parts) in cases {
        manifest_dataset(d, text);
        let err = Dataset::open(d).unwrap_err();
        assert!(matches!(err, DataError::Manifest { .. }), "{text:?}: {err}");
        assert_names(&err, parts);
    }

    // A row pointing at a file that does not exist.
    manifest_dataset(d, &format!("{header}\na,a.png,a_ma.png,,missing/ex.png,\n"));
    let err = Dataset::open(d).unwrap_err();
    assert!(matches!(err, DataError::MissingFile { .. }), "{err}");
    assert_names(&err, &["manifest.csv", "'a'", "ex", "missing/ex.png"]);
    manifest_dataset(d, &format!("{header}\nb,nowhere.jpg,,,,\n"));
    let err = Dataset::open(d).unwrap_err();
    assert_names(&err, &["manifest.csv", "'b'", "image", "nowhere.jpg"]);

    // No rows.
    for text in [format!("{header}\n"), String::new(), "\u{feff}".to_string()] {
        manifest_dataset(d, &text);
        let err = Dataset::open(d).unwrap_err();
        assert_names(&err, &["manifest.csv"]);
    }
    manifest_dataset(d, &format!("{header}\n"));
    assert!(matches!(
        Dataset::open(d).unwrap_err(),
        DataError::Invalid { .. }
    ));
}

#[test]
fn folders_that_are_not_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let err = Dataset::open(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::UnknownLayout { .. }), "{err}");
    assert_names(&err, &[&dir.path().display().to_string()]);

    let missing = dir.path().join("no-such-folder");
    let err = Dataset::open(&missing).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err}");
    assert_names(&err, &["no-such-folder"]);

    let file = write(&dir.path().join("plain.txt"), b"hello");
    let err = Dataset::open(&file).unwrap_err();
    assert_names(&err, &["plain.txt"]);

    // `A. Segmentation/` without its photographs folder.
    fs::create_dir_all(
        dir.path()
            .join("x/A. Segmentation/2. All Segmentation Groundtruths"),
    )
    .unwrap();
    let err = Dataset::open(&dir.path().join("x")).unwrap_err();
    assert_names(&err, &["A. Segmentation", "1. Original Images"]);
}

#[test]
fn malformed_files_in_a_dataset_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("good.jpg"), &jpeg_bytes(6, 4));
    let jpg = jpeg_bytes(32, 32);
    write(&d.join("cut.jpg"), &jpg[..jpg.len() - 40]);
    write(&d.join("junk.jpg"), b"\xff\xd8\xff garbage garbage");
    write(&d.join("junk.png"), b"\x89PNG\r\n\x1a\n garbage");
    write(&d.join("junk.tif"), b"II*\0garbage garbage");
    write(&d.join("small.png"), &png_bytes(5, 4));
    write(&d.join("ok.png"), &png_bytes(6, 4));
    let header = "id,image,ma,he,ex,se";
    let cases: &[(&str, &[&str])] = &[
        ("a,cut.jpg,,,,", &["cut.jpg"]),
        ("a,junk.jpg,,,,", &["junk.jpg"]),
        ("a,junk.png,,,,", &["junk.png"]),
        ("a,junk.tif,,,,", &["junk.tif"]),
        ("a,good.jpg,ok.png,junk.png,,", &["junk.png"]),
        ("a,good.jpg,,,junk.tif,", &["junk.tif"]),
        ("a,good.jpg,,,,junk.jpg", &["junk.jpg"]),
    ];
    for (row, parts) in cases {
        manifest_dataset(d, &format!("{header}\n{row}\n"));
        let dataset = Dataset::open(d).unwrap();
        let err = load_sample(&dataset.records[0]).unwrap_err();
        assert!(matches!(err, DataError::Decode { .. }), "{row}: {err}");
        assert_names(&err, parts);
    }

    // A mask whose size differs from its photograph names both files.
    manifest_dataset(d, &format!("{header}\na,good.jpg,ok.png,,small.png,\n"));
    let dataset = Dataset::open(d).unwrap();
    let err = load_sample(&dataset.records[0]).unwrap_err();
    assert!(matches!(err, DataError::SizeMismatch { .. }), "{err}");
    assert_names(&err, &["small.png", "good.jpg", "5x4", "6x4"]);
}

// ---------------------------------------------------------------------------------------
// No panics, whatever the bytes

/// Small valid files of every kind the readers meet, to be mutated.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("png", png_bytes(9, 7)),
        ("png", rgb_png_bytes(9, 7)),
        ("jpg", jpeg_bytes(17, 9)),
        ("tif", palette_tiff_bytes(13, 5)),
        ("tif", rgba_tiff_bytes(6, 5)),
    ]
}

fn exercise(dir: &Path, ext: &str, bytes: &[u8]) {
    let path = write(&dir.join(format!("f.{ext}")), bytes);
    // Ok or Err, never a panic; an error names the file.
    if let Err(e) = read_mask(&path) {
        assert!(e.to_string().contains("f."), "{e}");
    }
    if let Err(e) = read_rgb(&path) {
        assert!(e.to_string().contains("f."), "{e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ext in prop::sample::select(vec!["png", "jpg", "tif", "bin"]),
        magic in 0usize..5,
    ) {
        let dir = tempfile::tempdir().unwrap();
        // Arbitrary bytes behind each format's magic number, so that the decoders' header
        // parsers are exercised, not only format detection.
        let prefix: &[u8] = match magic {
            0 => b"\x89PNG\r\n\x1a\n",
            1 => b"\xff\xd8\xff",
            2 => b"II*\0",
            3 => b"MM\0*",
            _ => b"",
        };
        let mut data = prefix.to_vec();
        data.extend_from_slice(&bytes);
        exercise(dir.path(), ext, &data);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        seed in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (ext, mut bytes) = seeds().swap_remove(seed);
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let dir = tempfile::tempdir().unwrap();
        exercise(dir.path(), ext, &bytes);
    }

    #[test]
    fn arbitrary_manifests_never_panic(
        text in "(\u{feff})?(id|image|ma|he|ex|se|split|x|,| |\n|\"|a\\.png|m\\.png|val|test|\\.\\.)*",
        raw in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("a.png"), &rgb_png_bytes(3, 3));
        write(&dir.path().join("m.png"), &png_bytes(3, 3));
        for body in [text.as_bytes(), &raw] {
            write(&dir.path().join("manifest.csv"), body);
            if let Ok(dataset) = Dataset::open(dir.path()) {
                prop_assert!(!dataset.records.is_empty());
                for record in &dataset.records {
                    let _ = load_sample(record);
                }
            }
        }
    }
}
