//! Property tests of the data readers that parse a user's file (photograph, mask in TIFF,
//! PNG, palette PNG or JPEG, manifest CSV): random bytes and mutated valid files give an
//! `Err` (or a valid result), never a panic. Small inputs and a few hundred cases each, so
//! the suite stays fast.

use std::io::Cursor;
use std::path::Path;

use fovea_data::{read_mask, read_rgb, Dataset};
use image::{DynamicImage, ImageFormat, RgbImage};
use proptest::prelude::*;

/// A small valid file of each format the readers take.
fn valid_images() -> Vec<(&'static str, Vec<u8>)> {
    let rgb = RgbImage::from_fn(12, 9, |x, y| {
        image::Rgb([(x * 20) as u8, (y * 25) as u8, 7])
    });
    let grey = DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
    let mut out = Vec::new();
    for (ext, format, img) in [
        (
            "png",
            ImageFormat::Png,
            DynamicImage::ImageRgb8(rgb.clone()),
        ),
        (
            "png",
            ImageFormat::Png,
            DynamicImage::ImageLuma8(grey.clone()),
        ),
        ("tif", ImageFormat::Tiff, DynamicImage::ImageLuma8(grey)),
        (
            "tif",
            ImageFormat::Tiff,
            DynamicImage::ImageRgb8(rgb.clone()),
        ),
        ("jpg", ImageFormat::Jpeg, DynamicImage::ImageRgb8(rgb)),
    ] {
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
        out.push((ext, bytes));
    }
    out.push(("png", palette_png()));
    out
}

/// A 2-bit palette PNG, 12x9.
fn palette_png() -> Vec<u8> {
    let mut buf = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut buf, 12, 9);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Two);
        enc.set_palette(vec![255, 255, 255, 0, 0, 0, 9, 9, 9, 1, 2, 3]);
        let mut w = enc.write_header().unwrap();
        // 12 pixels of 2 bits = 3 bytes per row.
        let rows: Vec<u8> = (0..9 * 3).map(|i| (i * 37) as u8).collect();
        w.write_image_data(&rows).unwrap();
    }
    buf
}

/// `bytes` with some bytes replaced, then maybe truncated.
fn mutate(bytes: &[u8], edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for &(at, v) in edits {
        if !b.is_empty() {
            let i = at % b.len();
            b[i] = v;
        }
    }
    if let Some(c) = cut {
        b.truncate(c % (b.len() + 1));
    }
    b
}

fn both_readers(path: &Path) {
    let _ = read_rgb(path);
    let _ = read_mask(path);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_image_readers(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ext in prop::sample::select(vec!["jpg", "png", "tif", "bin"]),
        magic in prop::sample::select(vec![
            &b""[..], b"\x89PNG\r\n\x1a\n", b"II*\0", b"MM\0*", b"\xFF\xD8\xFF",
        ]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("x.{ext}"));
        let mut b = magic.to_vec();
        b.extend_from_slice(&bytes);
        std::fs::write(&path, b).unwrap();
        both_readers(&path);
    }

    #[test]
    fn mutated_valid_images_never_panic_the_image_readers(
        which in 0usize..6,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let (ext, bytes) = valid_images().swap_remove(which);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("x.{ext}"));
        std::fs::write(&path, mutate(&bytes, &edits, cut)).unwrap();
        both_readers(&path);
    }

    #[test]
    fn random_and_mutated_manifests_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<usize>()),
        random in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("images")).unwrap();
        std::fs::write(dir.path().join("images/a.jpg"), b"x").unwrap();
        std::fs::write(dir.path().join("images/m.png"), b"x").unwrap();
        let valid = "id,image,ma,he,ex,se,split\na,images/a.jpg,images/m.png,,,,train\n\
                     b,images/a.jpg,,,images/m.png,,test\n";
        let body = if random { bytes } else { mutate(valid.as_bytes(), &edits, cut) };
        std::fs::write(dir.path().join("manifest.csv"), body).unwrap();
        let _ = Dataset::open(dir.path());
    }
}

#[test]
fn the_valid_inputs_are_read() {
    // The mutations start from files the readers accept.
    let dir = tempfile::tempdir().unwrap();
    for (k, (ext, bytes)) in valid_images().into_iter().enumerate() {
        let path = dir.path().join(format!("{k}.{ext}"));
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(read_mask(&path).unwrap().dimensions(), (12, 9), "{k}");
        assert_eq!(read_rgb(&path).unwrap().dimensions(), (12, 9), "{k}");
    }
}
