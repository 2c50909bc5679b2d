//! Decoding photographs and lesion masks.
//!
//! Photographs ([`read_rgb`]): JPEG, PNG or TIFF, decoded into RGB8 with the `image` crate.
//! Grey images are expanded to three channels, 16-bit and float images are scaled to 8 bits,
//! an alpha channel is dropped. The EXIF orientation is *not* applied: masks are aligned with
//! the stored pixels, so the photograph must be too.
//!
//! Masks ([`read_mask`]): any nonzero pixel is lesion (1), everything else is 0.
//! - TIFF masks are read with the `tiff` crate directly. IDRiD's masks are 1-bit palette TIFFs
//!   (PhotometricInterpretation 3, BitsPerSample 1): lesion is a nonzero palette *index*,
//!   whatever colour the ColorMap gives it. The `tiff` crate (0.11) refuses palette images,
//!   so the photometric tag is rewritten to BlackIsZero in memory before decoding, which
//!   hands back the raw indices (1, 2, 4 or 8 bits; packed rows are unpacked, each row padded
//!   to a whole byte). Grey (any depth, integer or float), grey + extra samples (first sample
//!   only), RGB and RGBA, chunky or planar, are read sample by sample.
//! - RGB(A) masks (TIFF or PNG) use their colour channels only: lesion = any of R, G, B
//!   nonzero. The alpha channel never decides (`IDRiD_81_EX.tif` is RGBA).
//! - Palette PNG masks are read with the `png` crate without expanding the palette: lesion
//!   is a nonzero palette *index*, as for palette TIFFs, whatever colours the palette holds
//!   (a palette whose index 0 is white still means background at index 0).
//! - Other PNG masks and other formats are decoded with the `image` crate without
//!   conversion: grey -> nonzero; grey + alpha -> grey nonzero; RGB(A) -> any colour channel
//!   nonzero.
//! - JPEG masks follow the same rule: nonzero is lesion. JPEG compression noise makes some
//!   background pixels 1 or 2 instead of 0; they count as lesion, because the contract says
//!   nonzero (store masks losslessly).
//!
//! Every reader of a user's file opens it with [`open_regular`]: a directory, a FIFO, a
//! socket or a device is refused by name ("is a directory", "is not a regular file") before
//! it is opened, so a FIFO never blocks a read.
//!
//! Malformed files never panic: every failure is a [`DataError`] naming the file. Images
//! wider or taller than 65535 pixels or with more than 400 million pixels are refused before
//! anything is allocated for their pixels; a JPEG without its end-of-image marker (a
//! truncated download) is refused although the `image` crate would fill in grey.

use std::io::{Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use image::{DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use tiff::decoder::{Decoder as TiffDecoder, DecodingResult, Limits as TiffLimits};
use tiff::tags::{PlanarConfiguration, SampleFormat, Tag};
use tiff::ColorType as TiffColor;

use crate::dataset::ImageRecord;
use crate::error::{DataError, Result};
use crate::lesion::{LESIONS, NUM_LESIONS};

/// A binary lesion mask: one byte per pixel, 1 = lesion, 0 = background.
pub type Mask = GrayImage;

/// A decoded photograph with its four masks (all-zero where not annotated).
#[derive(Clone, Debug)]
pub struct Sample {
    pub id: String,
    /// RGB, 8 bits per channel.
    pub rgb: RgbImage,
    /// MA, HE, EX, SE masks of the photograph's size, values 0/1.
    pub masks: [Mask; NUM_LESIONS],
}

/// Largest accepted width or height.
pub const MAX_SIDE: u32 = 65_535;
/// Largest accepted number of pixels (width x height).
pub const MAX_PIXELS: u64 = 400_000_000;
/// Largest accepted file (photograph or mask), in bytes.
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// Most bytes a decoder may allocate for one image.
const MAX_DECODE_BYTES: u64 = 2 << 30;

/// Decodes a colour photograph (JPEG, PNG, TIFF) into RGB8. Grey images are expanded.
pub fn read_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = read_file(path)?;
    let image = decode_dynamic(path, bytes)?;
    Ok(match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
}

/// Decodes a lesion mask into 0/1 bytes (see the module doc for the rules). A mask that
/// marks more than half of its photograph as lesion is logged as a warning (an inverted
/// mask, or a palette whose background is not black, is the usual cause).
pub fn read_mask(path: &Path) -> Result<Mask> {
    let bytes = read_file(path)?;
    let mask = if is_tiff(&bytes) {
        read_tiff_mask(path, bytes)?
    } else if is_palette_png(&bytes) {
        guarded(path, || read_palette_png_mask(path, &bytes))?
    } else {
        let image = decode_dynamic(path, bytes)?;
        binarize_dynamic(path, image)?
    };
    let lesion = mask.iter().filter(|&&v| v != 0).count() as u64;
    let total = u64::from(mask.width()) * u64::from(mask.height());
    if lesion * 2 > total {
        tracing::warn!(
            "mask {} marks {:.0}% of its photograph as lesion: is it inverted?",
            path.display(),
            100.0 * lesion as f64 / total as f64
        );
    }
    Ok(mask)
}

/// Decodes a record's photograph and masks; a missing mask is all-zero; a mask whose size
/// differs from the photograph is a [`crate::DataError::SizeMismatch`] naming both files.
pub fn load_sample(record: &ImageRecord) -> Result<Sample> {
    let rgb = read_rgb(&record.image)?;
    let (width, height) = rgb.dimensions();
    // One mask at a time: a full-size photograph and its masks are tens of MB each.
    let mut masks: [Mask; NUM_LESIONS] = Default::default();
    for (slot, (lesion, mask_path)) in masks
        .iter_mut()
        .zip(LESIONS.iter().zip(record.masks.iter()))
    {
        *slot = match mask_path {
            None => GrayImage::new(width, height),
            Some(mask_path) => {
                let mask = read_mask(mask_path)?;
                if mask.dimensions() != (width, height) {
                    return Err(DataError::SizeMismatch {
                        mask: mask_path.clone(),
                        mask_w: mask.width(),
                        mask_h: mask.height(),
                        image: record.image.clone(),
                        image_w: width,
                        image_h: height,
                    });
                }
                tracing::trace!(id = %record.id, lesion = lesion.code(), "mask decoded");
                mask
            }
        };
    }
    Ok(Sample {
        id: record.id.clone(),
        rgb,
        masks,
    })
}

// ---------------------------------------------------------------------------------------
// Shared helpers

/// What stands at `path` when it is not a regular file: `Some("is a directory")`,
/// `Some("is not a regular file")`, or `None` (a regular file, or nothing: opening it then
/// says "No such file or directory"). Symbolic links are followed.
pub fn not_regular(path: &Path) -> Option<&'static str> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_dir() {
        Some("is a directory")
    } else if !meta.is_file() {
        Some("is not a regular file")
    } else {
        None
    }
}

/// Checks that `path` is a regular file (see [`not_regular`]), naming it otherwise.
pub fn check_regular(path: &Path) -> Result<()> {
    match not_regular(path) {
        Some(what) => Err(DataError::NotRegular {
            path: path.to_path_buf(),
            what,
        }),
        None => Ok(()),
    }
}

/// Opens a user's file for reading, refusing anything that is not a regular file (a
/// directory, a FIFO that would block, a device) with an error that names it.
pub fn open_regular(path: &Path) -> Result<std::fs::File> {
    check_regular(path)?;
    std::fs::File::open(path).map_err(|e| DataError::io(path, e))
}

/// Reads a whole regular file, refusing files over [`MAX_FILE_BYTES`].
fn read_file(path: &Path) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(DataError::decode(
            path,
            format!("file is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    if bytes.is_empty() {
        return Err(DataError::decode(path, "file is empty"));
    }
    Ok(bytes)
}

/// Refuses empty and absurdly large images before their pixels are allocated.
fn check_dimensions(path: &Path, width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(DataError::decode(
            path,
            format!("image has no pixels ({width}x{height})"),
        ));
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(DataError::decode(
            path,
            format!("image is {width}x{height}; sides over {MAX_SIDE} pixels are refused"),
        ));
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(DataError::decode(
            path,
            format!("image is {width}x{height}; more than {MAX_PIXELS} pixels are refused"),
        ));
    }
    Ok(())
}

/// Runs third-party decoding code, turning a panic on malformed data into an error.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => Err(DataError::decode(
            path,
            "the decoder failed on malformed data",
        )),
    }
}

fn is_tiff(bytes: &[u8]) -> bool {
    matches!(
        bytes.get(..4),
        Some(b"II*\0") | Some(b"MM\0*") | Some(b"II+\0") | Some(b"MM\0+")
    )
}

/// A PNG whose IHDR says colour type 3 (palette).
fn is_palette_png(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        && bytes.get(12..16) == Some(b"IHDR".as_slice())
        && bytes.get(25) == Some(&3)
}

fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// Decodes any supported format with the `image` crate, with limits.
fn decode_dynamic(path: &Path, bytes: Vec<u8>) -> Result<DynamicImage> {
    if is_jpeg(&bytes) {
        check_jpeg_complete(path, &bytes)?;
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    if reader.format().is_none() {
        // Unknown magic bytes: let the extension pick the decoder, which then reports
        // what is wrong with the content.
        match ImageFormat::from_path(path) {
            Ok(format) => reader.set_format(format),
            Err(_) => {
                return Err(DataError::decode(
                    path,
                    "unrecognised image format (expected JPEG, PNG or TIFF)",
                ))
            }
        }
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    guarded(path, || {
        let decoder = reader
            .into_decoder()
            .map_err(|e| DataError::decode(path, e))?;
        let (width, height) = decoder.dimensions();
        check_dimensions(path, width, height)?;
        DynamicImage::from_decoder(decoder).map_err(|e| DataError::decode(path, e))
    })
}

/// Checks that a JPEG's marker structure runs up to its end-of-image marker. The `image`
/// crate decodes truncated JPEGs leniently (grey fill); a truncated photograph must be an
/// error instead. Marker segments are skipped by their lengths, so an EXIF thumbnail's own
/// end-of-image marker does not count.
fn check_jpeg_complete(path: &Path, bytes: &[u8]) -> Result<()> {
    let truncated = || {
        DataError::decode(
            path,
            "truncated JPEG: the file ends before its end-of-image marker",
        )
    };
    let mut pos = 2; // after SOI
    loop {
        // Expect a marker: 0xFF (possibly repeated as fill), then the marker code.
        match bytes.get(pos) {
            Some(0xFF) => {}
            Some(_) => {
                return Err(DataError::decode(
                    path,
                    format!("corrupt JPEG: expected a marker at byte {pos}"),
                ))
            }
            None => return Err(truncated()),
        }
        while bytes.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let marker = *bytes.get(pos).ok_or_else(truncated)?;
        pos += 1;
        match marker {
            0xD9 => return Ok(()),                 // EOI
            0x01 | 0xD0..=0xD7 | 0xD8 => continue, // TEM, RSTn, stray SOI: no length
            _ => {}
        }
        let len_bytes = bytes.get(pos..pos + 2).ok_or_else(truncated)?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len < 2 {
            return Err(DataError::decode(
                path,
                format!("corrupt JPEG: bad segment length at byte {pos}"),
            ));
        }
        pos += len;
        if pos > bytes.len() {
            return Err(truncated());
        }
        if marker == 0xDA {
            // Start of scan: entropy-coded data up to the next marker that is not a stuffed
            // zero or a restart marker.
            loop {
                let rest = bytes.get(pos..).ok_or_else(truncated)?;
                let ff = rest.iter().position(|&b| b == 0xFF).ok_or_else(truncated)?;
                pos += ff;
                match bytes.get(pos + 1) {
                    None => return Err(truncated()),
                    Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => pos += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Masks decoded by the image crate (PNG, JPEG, ...)

fn nonzero_f32(v: f32) -> bool {
    v != 0.0 && !v.is_nan()
}

/// Turns a decoded image into a 0/1 mask: grey channel, or any colour channel; never alpha.
fn binarize_dynamic(path: &Path, image: DynamicImage) -> Result<Mask> {
    let (width, height) = (image.width(), image.height());
    let bits: Vec<u8> = match image {
        DynamicImage::ImageLuma8(img) => {
            let mut img = img;
            for v in img.iter_mut() {
                *v = u8::from(*v != 0);
            }
            return Ok(img);
        }
        DynamicImage::ImageLumaA8(img) => {
            img.chunks_exact(2).map(|p| u8::from(p[0] != 0)).collect()
        }
        DynamicImage::ImageRgb8(img) => img
            .chunks_exact(3)
            .map(|p| u8::from(p.iter().any(|&c| c != 0)))
            .collect(),
        DynamicImage::ImageRgba8(img) => img
            .chunks_exact(4)
            .map(|p| u8::from(p[..3].iter().any(|&c| c != 0)))
            .collect(),
        DynamicImage::ImageLuma16(img) => img.iter().map(|&v| u8::from(v != 0)).collect(),
        DynamicImage::ImageLumaA16(img) => {
            img.chunks_exact(2).map(|p| u8::from(p[0] != 0)).collect()
        }
        DynamicImage::ImageRgb16(img) => img
            .chunks_exact(3)
            .map(|p| u8::from(p.iter().any(|&c| c != 0)))
            .collect(),
        DynamicImage::ImageRgba16(img) => img
            .chunks_exact(4)
            .map(|p| u8::from(p[..3].iter().any(|&c| c != 0)))
            .collect(),
        DynamicImage::ImageRgb32F(img) => img
            .chunks_exact(3)
            .map(|p| u8::from(p.iter().any(|&c| nonzero_f32(c))))
            .collect(),
        DynamicImage::ImageRgba32F(img) => img
            .chunks_exact(4)
            .map(|p| u8::from(p[..3].iter().any(|&c| nonzero_f32(c))))
            .collect(),
        // A pixel type added to `image` later: its float RGBA form keeps nonzero values.
        other => other
            .to_rgba32f()
            .chunks_exact(4)
            .map(|p| u8::from(p[..3].iter().any(|&c| nonzero_f32(c))))
            .collect(),
    };
    GrayImage::from_raw(width, height, bits)
        .ok_or_else(|| DataError::decode(path, "decoded pixel buffer has the wrong size"))
}

// ---------------------------------------------------------------------------------------
// Palette PNG masks

/// A palette PNG mask, read with the `png` crate without expanding the palette: lesion is a
/// nonzero palette index, whatever colour the palette gives it (the rule of palette TIFFs).
fn read_palette_png_mask(path: &Path, bytes: &[u8]) -> Result<Mask> {
    let decode = |e: png::DecodingError| DataError::decode(path, e);
    let limits = png::Limits {
        bytes: MAX_DECODE_BYTES as usize,
    };
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    decoder.set_transformations(png::Transformations::IDENTITY);
    let (width, height) = {
        let info = decoder.read_header_info().map_err(decode)?;
        (info.width, info.height)
    };
    check_dimensions(path, width, height)?;
    let mut reader = decoder.read_info().map_err(decode)?;
    let bits = reader.info().bit_depth as usize;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| DataError::decode(path, "image too large"))?;
    let mut buf = vec![0u8; size];
    let out = reader.next_frame(&mut buf).map_err(decode)?;
    if !matches!(bits, 1 | 2 | 4 | 8) || out.line_size * height as usize > buf.len() {
        return Err(DataError::decode(
            path,
            format!("unexpected palette PNG layout ({bits} bits per pixel)"),
        ));
    }
    let per_byte = 8 / bits;
    let top = (1u16 << bits) - 1;
    let mut mask = GrayImage::new(width, height);
    for (y, row) in buf
        .chunks_exact(out.line_size)
        .take(height as usize)
        .enumerate()
    {
        for x in 0..width as usize {
            let byte = row[x / per_byte];
            let shift = 8 - bits * (x % per_byte + 1);
            let index = (u16::from(byte) >> shift) & top;
            mask.put_pixel(x as u32, y as u32, image::Luma([u8::from(index != 0)]));
        }
    }
    Ok(mask)
}

// ---------------------------------------------------------------------------------------
// TIFF masks

/// Rewrites the first image's PhotometricInterpretation from palette (3) to BlackIsZero (1)
/// in a TIFF held in memory, so that the `tiff` crate hands back raw palette indices.
/// Returns whether the file was a palette image. Malformed structures are left alone (the
/// decoder then reports them).
fn patch_palette_photometric(bytes: &mut [u8]) -> bool {
    let little = match bytes.get(..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return false,
    };
    let rd = |b: &[u8], at: usize, n: usize| -> Option<u64> {
        let s = b.get(at..at.checked_add(n)?)?;
        let mut v = 0u64;
        if little {
            for &byte in s.iter().rev() {
                v = (v << 8) | u64::from(byte);
            }
        } else {
            for &byte in s {
                v = (v << 8) | u64::from(byte);
            }
        }
        Some(v)
    };
    // (IFD offset, size of the entry count, entry size, offset of the value in an entry,
    // size of the count field)
    let (ifd, count_size, entry_size, value_at, count_field) = match rd(bytes, 2, 2) {
        Some(42) => match rd(bytes, 4, 4) {
            Some(o) => (o, 2, 12, 8, 4),
            None => return false,
        },
        Some(43) => match rd(bytes, 8, 8) {
            Some(o) => (o, 8, 20, 12, 8),
            None => return false,
        },
        _ => return false,
    };
    let Ok(ifd) = usize::try_from(ifd) else {
        return false;
    };
    let Some(entries) = rd(bytes, ifd, count_size) else {
        return false;
    };
    let first_entry = ifd + count_size;
    for i in 0..entries.min(4096) as usize {
        let at = first_entry + i * entry_size;
        let (Some(tag), Some(kind), Some(count)) = (
            rd(bytes, at, 2),
            rd(bytes, at + 2, 2),
            rd(bytes, at + 4, count_field),
        ) else {
            return false;
        };
        if tag != u64::from(Tag::PhotometricInterpretation.to_u16()) || count != 1 {
            continue;
        }
        let width = match kind {
            3 => 2, // SHORT
            4 => 4, // LONG
            _ => return false,
        };
        let value_pos = at + value_at;
        if rd(bytes, value_pos, width) != Some(3) {
            return false;
        }
        let Some(slot) = bytes.get_mut(value_pos..value_pos + width) else {
            return false;
        };
        slot.fill(0);
        let last = if little { 0 } else { width - 1 };
        if let Some(b) = slot.get_mut(last) {
            *b = 1;
        }
        return true;
    }
    false
}

/// How the decoded samples of a TIFF are laid out in the byte buffer.
struct TiffRaster<'a> {
    bytes: &'a [u8],
    width: usize,
    height: usize,
    bits: usize,
    float: bool,
    /// Samples per pixel in one row of one plane (1 when planar).
    texel_samples: usize,
    row_stride: usize,
    planar: bool,
    plane_stride: usize,
}

impl TiffRaster<'_> {
    /// Sets `out[x] = 1` for every pixel of row `y` whose sample `channel` is nonzero.
    /// Returns `None` if the buffer is too short.
    fn or_row(&self, out: &mut [u8], y: usize, channel: usize) -> Option<()> {
        let (base, first, step) = if self.planar {
            (
                channel.checked_mul(self.plane_stride)? + y.checked_mul(self.row_stride)?,
                0,
                1,
            )
        } else {
            (y.checked_mul(self.row_stride)?, channel, self.texel_samples)
        };
        let row = self.bytes.get(base..base.checked_add(self.row_stride)?)?;
        match (self.bits, self.float) {
            (1, false) if step == 1 => {
                for (i, &byte) in row.iter().enumerate() {
                    if byte == 0 {
                        continue;
                    }
                    for bit in 0..8 {
                        if byte & (0x80 >> bit) != 0 {
                            if let Some(o) = out.get_mut(i * 8 + bit) {
                                *o = 1;
                            }
                        }
                    }
                }
            }
            (8, false) => {
                for (x, o) in out.iter_mut().enumerate() {
                    if *row.get(first + x * step)? != 0 {
                        *o = 1;
                    }
                }
            }
            (bits, false) if bits < 8 => {
                for (x, o) in out.iter_mut().enumerate() {
                    let start = (first + x * step) * bits;
                    for b in start..start + bits {
                        if row.get(b / 8)? & (0x80 >> (b % 8)) != 0 {
                            *o = 1;
                            break;
                        }
                    }
                }
            }
            (16 | 32 | 64, false) => {
                let n = self.bits / 8;
                for (x, o) in out.iter_mut().enumerate() {
                    let at = (first + x * step) * n;
                    if row.get(at..at + n)?.iter().any(|&b| b != 0) {
                        *o = 1;
                    }
                }
            }
            (16 | 32 | 64, true) => {
                let n = self.bits / 8;
                for (x, o) in out.iter_mut().enumerate() {
                    let at = (first + x * step) * n;
                    let s = row.get(at..at + n)?;
                    let lesion = match *s {
                        [a, b] => {
                            let v = u16::from_ne_bytes([a, b]);
                            let nan = v & 0x7C00 == 0x7C00 && v & 0x03FF != 0;
                            v & 0x7FFF != 0 && !nan
                        }
                        [a, b, c, d] => nonzero_f32(f32::from_ne_bytes([a, b, c, d])),
                        [a, b, c, d, e, f, g, h] => {
                            let v = f64::from_ne_bytes([a, b, c, d, e, f, g, h]);
                            v != 0.0 && !v.is_nan()
                        }
                        _ => return None,
                    };
                    if lesion {
                        *o = 1;
                    }
                }
            }
            _ => return None,
        }
        Some(())
    }
}

fn read_tiff_mask(path: &Path, mut bytes: Vec<u8>) -> Result<Mask> {
    let palette = patch_palette_photometric(&mut bytes);
    let tiff_err = |e: tiff::TiffError| DataError::decode(path, format!("TIFF: {e}"));
    guarded(path, || {
        let mut limits = TiffLimits::default();
        limits.decoding_buffer_size = MAX_DECODE_BYTES as usize;
        let mut decoder = TiffDecoder::new(Cursor::new(&bytes[..]))
            .map_err(tiff_err)?
            .with_limits(limits);
        let (width, height) = decoder.dimensions().map_err(tiff_err)?;
        check_dimensions(path, width, height)?;
        let color = decoder.colortype().map_err(tiff_err)?;
        // Which samples of a pixel decide: the grey (or palette index) sample, or the three
        // colour samples. Alpha and other extra samples never do.
        let (samples, channels): (usize, &[usize]) = match color {
            TiffColor::Gray(_) | TiffColor::Palette(_) => (1, &[0]),
            TiffColor::GrayA(_) => (2, &[0]),
            TiffColor::Multiband { num_samples, .. } => (usize::from(num_samples), &[0]),
            TiffColor::RGB(_) => (3, &[0, 1, 2]),
            TiffColor::RGBA(_) => (4, &[0, 1, 2]),
            other => {
                return Err(DataError::decode(
                    path,
                    format!(
                        "TIFF colour type {other:?} is not supported for masks (use grey, \
                         palette, RGB or RGBA)"
                    ),
                ))
            }
        };
        let bits = usize::from(color.bit_depth());
        let planar = matches!(
            decoder
                .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
                .map_err(tiff_err)?
                .and_then(PlanarConfiguration::from_u16),
            Some(PlanarConfiguration::Planar)
        ) && samples > 1;
        let float = matches!(
            decoder
                .image_buffer_layout()
                .map_err(tiff_err)?
                .sample_format,
            SampleFormat::IEEEFP
        );
        let supported = matches!((bits, float), (1..=8, false) | (16 | 32 | 64, _));
        if !supported {
            return Err(DataError::decode(
                path,
                format!(
                    "TIFF with {bits}-bit {} samples is not supported for masks",
                    if float { "float" } else { "integer" }
                ),
            ));
        }
        let mut buffer = DecodingResult::U8(Vec::new());
        let layout = decoder
            .read_image_to_buffer(&mut buffer)
            .map_err(tiff_err)?;
        let data = buffer.as_buffer(0);
        let data = data.as_bytes();
        if data.len() < layout.complete_len {
            return Err(DataError::decode(
                path,
                "TIFF image is too large to decode all of its planes",
            ));
        }
        let (w, h) = (width as usize, height as usize);
        let raster = TiffRaster {
            bytes: data,
            width: w,
            height: h,
            bits,
            float,
            texel_samples: if planar { 1 } else { samples },
            row_stride: layout.row_stride.map_or(0, |s| s.get()),
            planar,
            plane_stride: layout.plane_stride.map_or(0, |s| s.get()),
        };
        let mut mask = vec![0u8; w * h];
        for (y, out) in mask
            .chunks_exact_mut(raster.width)
            .enumerate()
            .take(raster.height)
        {
            for &c in channels {
                raster.or_row(out, y, c).ok_or_else(|| {
                    DataError::decode(path, "TIFF pixel data is shorter than its size says")
                })?;
            }
        }
        tracing::debug!(
            path = %path.display(),
            ?color,
            palette,
            planar,
            "TIFF mask decoded"
        );
        GrayImage::from_raw(width, height, mask)
            .ok_or_else(|| DataError::decode(path, "decoded pixel buffer has the wrong size"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};
    use std::path::PathBuf;

    /// One IFD entry for [`tiff_bytes`]: tag, type (3 = SHORT, 4 = LONG), values.
    type Entry = (u16, u16, Vec<u32>);

    /// Writes a minimal uncompressed baseline TIFF (one strip) by hand, little- or big-endian,
    /// with the given tags plus the strip tags. The `tiff` crate's encoder cannot write
    /// palette or 1-bit images, which is what IDRiD's masks are.
    fn tiff_bytes(little: bool, mut entries: Vec<Entry>, data: &[u8]) -> Vec<u8> {
        let u16b = |v: u16| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let u32b = |v: u32| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend_from_slice(if little { b"II" } else { b"MM" });
        out.extend_from_slice(&u16b(42));
        out.extend_from_slice(&[0; 4]); // IFD offset, patched below
        let data_at = out.len() as u32;
        out.extend_from_slice(data);
        entries.push((273, 4, vec![data_at])); // StripOffsets
        entries.push((279, 4, vec![data.len() as u32])); // StripByteCounts
        entries.sort_by_key(|e| e.0);
        // Out-of-line values first.
        let mut value_fields = Vec::new();
        for (_, kind, values) in &entries {
            let mut raw = Vec::new();
            for &v in values {
                if *kind == 3 {
                    raw.extend_from_slice(&u16b(v as u16));
                } else {
                    raw.extend_from_slice(&u32b(v));
                }
            }
            if raw.len() <= 4 {
                raw.resize(4, 0);
                value_fields.push(raw);
            } else {
                if out.len() % 2 == 1 {
                    out.push(0);
                }
                let at = out.len() as u32;
                out.extend_from_slice(&raw);
                value_fields.push(u32b(at).to_vec());
            }
        }
        if out.len() % 2 == 1 {
            out.push(0);
        }
        let ifd = out.len() as u32;
        out[4..8].copy_from_slice(&u32b(ifd));
        out.extend_from_slice(&u16b(entries.len() as u16));
        for ((tag, kind, values), field) in entries.iter().zip(value_fields) {
            out.extend_from_slice(&u16b(*tag));
            out.extend_from_slice(&u16b(*kind));
            out.extend_from_slice(&u32b(values.len() as u32));
            out.extend_from_slice(&field);
        }
        out.extend_from_slice(&u32b(0)); // no next IFD
        out
    }

    /// A palette TIFF of `bits` bits per index. `rows[y][x]` are the indices. The colour map
    /// makes index 0 *red* and every other index black, so a reader that looked at colours
    /// instead of indices would get every pixel wrong.
    fn palette_tiff(little: bool, bits: u32, rows: &[Vec<u8>]) -> Vec<u8> {
        let (w, h) = (rows[0].len() as u32, rows.len() as u32);
        let row_bytes = (w * bits).div_ceil(8) as usize;
        let mut data = vec![0u8; row_bytes * h as usize];
        for (y, row) in rows.iter().enumerate() {
            for (x, &v) in row.iter().enumerate() {
                let bit = x * bits as usize;
                let shift = 8 - bits as usize - bit % 8;
                data[y * row_bytes + bit / 8] |= v << shift;
            }
        }
        let n = 1usize << bits;
        let mut colormap = vec![0u32; 3 * n];
        colormap[0] = 65535; // red of index 0
        let entries = vec![
            (256, 3, vec![w]),
            (257, 3, vec![h]),
            (258, 3, vec![bits]),
            (259, 3, vec![1]),
            (262, 3, vec![3]), // palette
            (277, 3, vec![1]),
            (278, 3, vec![h]),
            (320, 3, colormap),
        ];
        tiff_bytes(little, entries, &data)
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn pixels(mask: &Mask) -> Vec<Vec<u8>> {
        (0..mask.height())
            .map(|y| (0..mask.width()).map(|x| mask.get_pixel(x, y)[0]).collect())
            .collect()
    }

    /// A deterministic 0/1 pattern of `w` x `h` with lesion pixels at both row ends.
    fn pattern(w: usize, h: usize) -> Vec<Vec<u8>> {
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| u8::from(x == 0 || x == w - 1 || (x * 7 + y * 3) % 5 == 0))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn one_bit_palette_tiff_gives_exact_pixels_in_both_byte_orders() {
        let dir = tempfile::tempdir().unwrap();
        for (w, h) in [(13, 3), (5, 4), (8, 2), (1, 1), (17, 5)] {
            let rows = pattern(w, h);
            for little in [true, false] {
                let path = write(dir.path(), "m.tif", &palette_tiff(little, 1, &rows));
                let mask = read_mask(&path).unwrap();
                assert_eq!(mask.dimensions(), (w as u32, h as u32));
                assert_eq!(pixels(&mask), rows, "{w}x{h} little={little}");
            }
        }
    }

    #[test]
    fn palette_tiff_lesion_is_any_nonzero_index() {
        let dir = tempfile::tempdir().unwrap();
        for bits in [2u32, 4, 8] {
            let max = ((1u32 << bits) - 1) as u8;
            let rows = vec![
                vec![0, 1, max, 0, 2.min(max), 0, 0],
                vec![max, 0, 0, 0, 0, 0, 1],
            ];
            let want: Vec<Vec<u8>> = rows
                .iter()
                .map(|r| r.iter().map(|&v| u8::from(v != 0)).collect())
                .collect();
            let path = write(dir.path(), "p.tif", &palette_tiff(true, bits, &rows));
            assert_eq!(pixels(&read_mask(&path).unwrap()), want, "{bits} bits");
        }
    }

    #[test]
    fn rgba_masks_ignore_alpha() {
        // Lesion pixels are red with alpha 0; background is black with alpha 255: a reader
        // that looked at alpha, or at the maximum over four channels, gets it wrong.
        let (w, h) = (7u32, 3u32);
        let want = pattern(w as usize, h as usize);
        let img = ImageBuffer::from_fn(w, h, |x, y| {
            if want[y as usize][x as usize] == 1 {
                Rgba([200u8, 0, 0, 0])
            } else {
                Rgba([0, 0, 0, 255])
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("m.png");
        img.save(&png).unwrap();
        assert_eq!(pixels(&read_mask(&png).unwrap()), want);

        let tif = dir.path().join("m.tif");
        let mut file = std::fs::File::create(&tif).unwrap();
        tiff::encoder::TiffEncoder::new(&mut file)
            .unwrap()
            .write_image::<tiff::encoder::colortype::RGBA8>(w, h, img.as_raw())
            .unwrap();
        drop(file);
        assert_eq!(pixels(&read_mask(&tif).unwrap()), want);

        // Green or blue alone also count.
        let img = ImageBuffer::from_fn(3, 1, |x, _| match x {
            0 => Rgba([0u8, 9, 0, 0]),
            1 => Rgba([0, 0, 1, 255]),
            _ => Rgba([0, 0, 0, 255]),
        });
        img.save(&png).unwrap();
        assert_eq!(pixels(&read_mask(&png).unwrap()), vec![vec![1, 1, 0]]);
    }

    #[test]
    fn grey_and_rgb_masks() {
        let dir = tempfile::tempdir().unwrap();
        let (w, h) = (6u32, 4u32);
        let want = pattern(w as usize, h as usize);
        let on = |x: u32, y: u32| want[y as usize][x as usize] == 1;
        let path = dir.path().join("g.png");

        for value in [255u8, 1, 37] {
            ImageBuffer::from_fn(w, h, |x, y| Luma([if on(x, y) { value } else { 0 }]))
                .save(&path)
                .unwrap();
            assert_eq!(pixels(&read_mask(&path).unwrap()), want, "grey {value}");
        }
        ImageBuffer::from_fn(w, h, |x, y| Luma([if on(x, y) { 1u16 } else { 0 }]))
            .save(&path)
            .unwrap();
        assert_eq!(pixels(&read_mask(&path).unwrap()), want, "grey 16-bit");
        // Grey + alpha: the grey value decides, alpha is the opposite of the mask.
        ImageBuffer::from_fn(w, h, |x, y| {
            if on(x, y) {
                LumaA([255u8, 0])
            } else {
                LumaA([0, 255])
            }
        })
        .save(&path)
        .unwrap();
        assert_eq!(pixels(&read_mask(&path).unwrap()), want, "grey+alpha");
        ImageBuffer::from_fn(w, h, |x, y| {
            Rgb(if on(x, y) { [0u8, 0, 255] } else { [0, 0, 0] })
        })
        .save(&path)
        .unwrap();
        assert_eq!(pixels(&read_mask(&path).unwrap()), want, "rgb");

        // Grey 8- and 16-bit TIFFs written by the tiff crate, LZW-compressed.
        let tif = dir.path().join("g.tif");
        let grey8: Vec<u8> = want.iter().flatten().map(|&v| v * 255).collect();
        let grey16: Vec<u16> = want.iter().flatten().map(|&v| u16::from(v) * 3).collect();
        let encoder = |file| {
            tiff::encoder::TiffEncoder::new(file)
                .unwrap()
                .with_compression(tiff::encoder::Compression::Lzw)
        };
        encoder(std::fs::File::create(&tif).unwrap())
            .write_image::<tiff::encoder::colortype::Gray8>(w, h, &grey8)
            .unwrap();
        assert_eq!(pixels(&read_mask(&tif).unwrap()), want, "grey8 tiff");
        encoder(std::fs::File::create(&tif).unwrap())
            .write_image::<tiff::encoder::colortype::Gray16>(w, h, &grey16)
            .unwrap();
        assert_eq!(pixels(&read_mask(&tif).unwrap()), want, "grey16 tiff");
        let rgb: Vec<u8> = want.iter().flatten().flat_map(|&v| [0, v, 0]).collect();
        encoder(std::fs::File::create(&tif).unwrap())
            .write_image::<tiff::encoder::colortype::RGB8>(w, h, &rgb)
            .unwrap();
        assert_eq!(pixels(&read_mask(&tif).unwrap()), want, "rgb tiff");
    }

    #[test]
    fn planar_rgb_tiff_mask() {
        // PlanarConfiguration 2: all R, then all G, then all B (one strip per plane).
        let (w, h) = (5u32, 2u32);
        let want = pattern(w as usize, h as usize);
        let n = (w * h) as usize;
        let mut data = vec![0u8; 3 * n];
        for (i, &v) in want.iter().flatten().enumerate() {
            data[2 * n + i] = v * 9; // blue plane only
        }
        let plane = n as u32;
        let entries = vec![
            (256, 3, vec![w]),
            (257, 3, vec![h]),
            (258, 3, vec![8, 8, 8]),
            (259, 3, vec![1]),
            (262, 3, vec![2]),
            (277, 3, vec![3]),
            (278, 3, vec![h]),
            (284, 3, vec![2]),
        ];
        // tiff_bytes writes one strip at offset 8; point StripOffsets/StripByteCounts at
        // out-of-line triples instead (one strip per plane).
        let mut b = tiff_bytes(true, entries, &data);
        let ifd = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
        let count = u16::from_le_bytes(b[ifd..ifd + 2].try_into().unwrap()) as usize;
        let offsets_at = b.len() as u32;
        for k in 0..3u32 {
            b.extend_from_slice(&(8 + k * plane).to_le_bytes());
        }
        let counts_at = b.len() as u32;
        for _ in 0..3 {
            b.extend_from_slice(&plane.to_le_bytes());
        }
        for i in 0..count {
            let at = ifd + 2 + 12 * i;
            let target = match u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) {
                273 => offsets_at,
                279 => counts_at,
                _ => continue,
            };
            b[at + 4..at + 8].copy_from_slice(&3u32.to_le_bytes());
            b[at + 8..at + 12].copy_from_slice(&target.to_le_bytes());
        }
        let with_strips = b;
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "planar.tif", &with_strips);
        assert_eq!(pixels(&read_mask(&path).unwrap()), want);
    }

    #[test]
    fn read_rgb_converts_grey_and_16_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        ImageBuffer::from_fn(3, 2, |x, y| Luma([(x * 10 + y) as u8]))
            .save(&path)
            .unwrap();
        let rgb = read_rgb(&path).unwrap();
        assert_eq!(rgb.dimensions(), (3, 2));
        assert_eq!(rgb.get_pixel(2, 1).0, [21, 21, 21]);

        ImageBuffer::from_fn(2, 1, |x, _| {
            Rgb([if x == 0 { 65535u16 } else { 0 }, 257, 0])
        })
        .save(&path)
        .unwrap();
        let rgb = read_rgb(&path).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 1, 0]);
        assert_eq!(rgb.get_pixel(1, 0).0, [0, 1, 0]);

        let jpg = dir.path().join("p.jpg");
        ImageBuffer::from_fn(40, 24, |x, y| Rgb([x as u8 * 6, y as u8 * 10, 128u8]))
            .save(&jpg)
            .unwrap();
        assert_eq!(read_rgb(&jpg).unwrap().dimensions(), (40, 24));
    }

    #[test]
    fn malformed_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.png");
        let err = read_mask(&missing).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }), "{err}");
        assert!(err.to_string().contains("nope.png"), "{err}");

        for name in ["g.jpg", "g.png", "g.tif", "g.bin", "empty.png"] {
            let bytes: &[u8] = if name.starts_with("empty") {
                b""
            } else {
                b"this is not an image at all"
            };
            let path = write(dir.path(), name, bytes);
            for err in [
                read_mask(&path).unwrap_err(),
                read_rgb(&path).map(|_| ()).unwrap_err(),
            ] {
                assert!(matches!(err, DataError::Decode { .. }), "{name}: {err}");
                assert!(err.to_string().contains(name), "{name}: {err}");
            }
        }

        // Truncated files of each format.
        let png = dir.path().join("t.png");
        ImageBuffer::from_fn(64, 64, |x, y| Rgb([x as u8, y as u8, (x ^ y) as u8]))
            .save(&png)
            .unwrap();
        let jpg = dir.path().join("t.jpg");
        ImageBuffer::from_fn(64, 64, |x, y| {
            Rgb([x as u8 * 3, y as u8 * 2, (x ^ y) as u8])
        })
        .save(&jpg)
        .unwrap();
        let tif = write(
            dir.path(),
            "t.tif",
            &palette_tiff(true, 1, &pattern(64, 64)),
        );
        for path in [png, jpg, tif] {
            let bytes = std::fs::read(&path).unwrap();
            let cut = write(dir.path(), "cut.img", &bytes[..bytes.len() * 2 / 3]);
            let cut_name = path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .replace("t.", "cut.");
            let renamed = dir.path().join(&cut_name);
            std::fs::rename(&cut, &renamed).unwrap();
            let err = read_mask(&renamed).unwrap_err();
            assert!(err.to_string().contains(&cut_name), "{err}");
            if !cut_name.ends_with(".tif") {
                let err = read_rgb(&renamed).unwrap_err();
                assert!(err.to_string().contains(&cut_name), "{err}");
            }
        }
    }

    #[test]
    fn absurd_dimensions_are_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        // A 60000 x 60000 1-bit palette TIFF header with 8 bytes of data.
        for (w, h) in [(60_000u32, 60_000u32), (70_000, 1), (1, 0)] {
            let entries = vec![
                (256, 4, vec![w]),
                (257, 4, vec![h]),
                (258, 3, vec![1]),
                (259, 3, vec![1]),
                (262, 3, vec![1]),
                (277, 3, vec![1]),
                (278, 4, vec![h]),
            ];
            let path = write(dir.path(), "big.tif", &tiff_bytes(true, entries, &[0; 8]));
            let err = read_mask(&path).unwrap_err();
            assert!(matches!(err, DataError::Decode { .. }), "{err}");
            assert!(err.to_string().contains("big.tif"), "{err}");
        }
    }

    #[test]
    fn jpeg_structure_check() {
        let dir = tempfile::tempdir().unwrap();
        let jpg = dir.path().join("ok.jpg");
        ImageBuffer::from_fn(16, 16, |x, y| Rgb([x as u8 * 9, y as u8 * 9, 0u8]))
            .save(&jpg)
            .unwrap();
        let bytes = std::fs::read(&jpg).unwrap();
        assert!(check_jpeg_complete(&jpg, &bytes).is_ok());
        // Trailing bytes after EOI are fine.
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"trailer");
        assert!(check_jpeg_complete(&jpg, &trailing).is_ok());
        for cut in [3, 4, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                check_jpeg_complete(&jpg, &bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn palette_patch_leaves_other_files_alone() {
        let mut grey = palette_tiff(true, 1, &pattern(5, 2));
        assert!(patch_palette_photometric(&mut grey));
        assert!(!patch_palette_photometric(&mut grey), "already patched");
        assert!(!patch_palette_photometric(
            &mut b"II*\0\xff\xff\xff\xff".to_vec()
        ));
        assert!(!patch_palette_photometric(&mut b"MM".to_vec()));
        assert!(!patch_palette_photometric(&mut Vec::new()));
    }

    /// A palette PNG of `rows` (indices), packed at `bits` per pixel.
    fn palette_png(bits: u8, palette: &[u8], rows: &[Vec<u8>]) -> Vec<u8> {
        let (w, h) = (rows[0].len(), rows.len());
        let depth = match bits {
            1 => png::BitDepth::One,
            2 => png::BitDepth::Two,
            4 => png::BitDepth::Four,
            _ => png::BitDepth::Eight,
        };
        let per = 8 / bits as usize;
        let mut data = Vec::new();
        for row in rows {
            let mut packed = vec![0u8; w.div_ceil(per)];
            for (x, &v) in row.iter().enumerate() {
                packed[x / per] |= v << (8 - bits as usize * (x % per + 1));
            }
            data.extend(packed);
        }
        let mut buf = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut buf, w as u32, h as u32);
            enc.set_color(png::ColorType::Indexed);
            enc.set_depth(depth);
            enc.set_palette(palette.to_vec());
            let mut wr = enc.write_header().unwrap();
            wr.write_image_data(&data).unwrap();
        }
        buf
    }

    #[test]
    fn palette_png_lesion_is_any_nonzero_index_whatever_the_colours() {
        let dir = tempfile::tempdir().unwrap();
        // Index 0 is white, index 1 black: only index 1 (and 2, 3) is lesion.
        let palette = [255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 0, 0];
        for bits in [1u8, 2, 4, 8] {
            let top = if bits == 1 { 1 } else { 3 };
            let rows: Vec<Vec<u8>> = (0..5)
                .map(|y| {
                    (0..11)
                        .map(|x| ((x * 7 + y * 3) % 5).min(top) as u8)
                        .collect()
                })
                .collect();
            let path = write(
                dir.path(),
                &format!("p{bits}.png"),
                &palette_png(bits, &palette, &rows),
            );
            let want: Vec<Vec<u8>> = rows
                .iter()
                .map(|r| r.iter().map(|&v| u8::from(v != 0)).collect())
                .collect();
            assert_eq!(pixels(&read_mask(&path).unwrap()), want, "{bits} bits");
        }
        // Photographs are not affected: a palette photograph is expanded to its colours.
        let rows = vec![vec![0u8, 1, 2]];
        let path = write(dir.path(), "photo.png", &palette_png(8, &palette, &rows));
        let rgb = read_rgb(&path).unwrap();
        assert_eq!(rgb.as_raw(), &[255, 255, 255, 0, 0, 0, 255, 0, 0]);
    }

    #[test]
    fn directories_and_fifos_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("folder.png");
        std::fs::create_dir(&sub).unwrap();
        let e = read_mask(&sub).unwrap_err().to_string();
        assert_eq!(e, format!("{}: is a directory", sub.display()));
        let fifo = dir.path().join("fifo.jpg");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Refused before it is opened: opening a FIFO for reading would block.
        let e = read_rgb(&fifo).unwrap_err().to_string();
        assert_eq!(e, format!("{}: is not a regular file", fifo.display()));
        let missing = dir.path().join("missing.png");
        assert!(read_rgb(&missing)
            .unwrap_err()
            .to_string()
            .contains("No such file"));
    }
}
