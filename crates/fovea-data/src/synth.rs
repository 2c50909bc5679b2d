//! Synthetic fundus-like photographs with lesion masks, written as a manifest dataset
//! (CONTRACTS 1). Used by the README's first command and by fast tests.
//!
//! Each photograph is painted in two layers. An *albedo* layer holds what the retina looks
//! like under even light: an orange-red background with mild texture, a pale yellowish optic
//! disc to one side, a darker macula on the other side, dark red branching vessels that leave
//! the disc (upper and lower temporal arcades curving around the macula, nasal vessels and
//! thin macular branches, veins darker and wider than arteries, tapering down to a pixel) and
//! the lesions. An *illumination* layer then multiplies it: a smooth low-frequency gradient,
//! vignetting that dims the field toward its rim and a soft edge, with pure black outside the
//! circular field of view.
//!
//! Lesions, sized relative to a 4288x2848 photograph and scaled to the field of view:
//! - MA (microaneurysms): small dark red dots (radius 3-8 px, at least about a pixel);
//! - HE (haemorrhages): dark red blots made of a few ellipses, some flame-shaped along the
//!   nerve fibres (20-100 px);
//! - EX (hard exudates): clusters of small bright yellow specks with sharp edges, sometimes in
//!   a ring (specks 5-30 px);
//! - SE (soft exudates): pale whitish fluffy patches with blurred edges (40-120 px), absent in
//!   about half of the photographs.
//!
//! A pixel belongs to the mask of the lesion painted last over it, so every mask pixel shows
//! its own lesion; an SE mask is its patch's core before blurring. All lesions lie inside
//! the field of view and off the optic disc.
//!
//! Output: `images/SYN_0001.jpg` (JPEG quality 92), `masks/{MA,HE,EX,SE}/SYN_0001.png`
//! (8-bit grey, 0 or 255) and, written last and atomically, `manifest.csv` with columns
//! `id,image,ma,he,ex,se` (paths relative to the output folder, an empty cell where the
//! photograph has no lesion of that type: no mask file is written then).
//!
//! Photograph k depends only on (seed, k, width, height): it is the same whatever the number
//! of photographs, and the same settings always give byte-identical files.

use std::f32::consts::PI;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use crate::lesion::{Lesion, LESIONS, NUM_LESIONS};

/// Smallest accepted width or height.
pub const MIN_SIDE: u32 = 64;
/// Largest accepted width or height.
pub const MAX_SIDE: u32 = 8192;
/// JPEG quality of the photographs.
const JPEG_QUALITY: u8 = 92;
/// Field-of-view diameter (pixels) of the 4288x2848 photograph the lesion sizes refer to.
const REFERENCE_FOV_DIAMETER: f32 = 2700.0;
/// Lesion pixels stay within this fraction of the field-of-view radius.
const LESION_LIMIT: f32 = 0.96;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSettings {
    /// Number of photographs.
    pub images: usize,
    /// Seed: the same settings always give byte-identical files.
    pub seed: u64,
    /// Photograph width in pixels.
    pub width: u32,
    /// Photograph height in pixels.
    pub height: u32,
}

impl Default for SynthSettings {
    fn default() -> Self {
        SynthSettings {
            images: 8,
            seed: 0,
            width: 768,
            height: 512,
        }
    }
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SynthSummary {
    pub images: usize,
    /// Lesion pixels written per lesion (MA, HE, EX, SE) over all masks.
    pub lesion_pixels: [u64; 4],
}

/// Writes `settings.images` photographs and their masks under `out` with `out/manifest.csv`.
pub fn generate(out: &Path, settings: &SynthSettings) -> Result<SynthSummary> {
    validate(out, settings)?;
    let (width, height) = (settings.width, settings.height);

    let images_dir = out.join("images");
    fs::create_dir_all(&images_dir).map_err(|e| DataError::io(&images_dir, e))?;
    for lesion in LESIONS {
        let dir = out.join("masks").join(lesion.code());
        fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    }
    // An old manifest would describe files that are about to be replaced.
    let manifest = out.join("manifest.csv");
    match fs::remove_file(&manifest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(DataError::io(&manifest, e)),
    }

    let digits = settings.images.to_string().len().max(4);
    let mut summary = SynthSummary {
        images: settings.images,
        lesion_pixels: [0; NUM_LESIONS],
    };
    let mut rows = Vec::with_capacity(settings.images);
    for index in 0..settings.images {
        let id = format!("SYN_{:0digits$}", index + 1);
        let photo = render(settings.seed, index as u64, width, height);

        let image_rel = format!("images/{id}.jpg");
        write_jpeg(&out.join(&image_rel), &photo.rgb, width, height)?;

        let mut cells: [String; NUM_LESIONS] = Default::default();
        for lesion in LESIONS {
            let code = label_of(lesion);
            let count = photo.label.iter().filter(|&&v| v == code).count();
            if count == 0 {
                continue;
            }
            let mask: Vec<u8> = photo
                .label
                .iter()
                .map(|&v| if v == code { 255 } else { 0 })
                .collect();
            let rel = format!("masks/{}/{id}.png", lesion.code());
            write_png(&out.join(&rel), &mask, width, height)?;
            summary.lesion_pixels[lesion.index()] += count as u64;
            cells[lesion.index()] = rel;
        }
        rows.push((id, image_rel, cells));
    }

    write_manifest(out, &rows)?;
    Ok(summary)
}

fn validate(out: &Path, settings: &SynthSettings) -> Result<()> {
    let invalid = |reason: String| {
        Err(DataError::Invalid {
            path: out.to_path_buf(),
            reason,
        })
    };
    if settings.images == 0 {
        return invalid("synthetic dataset needs at least 1 image".into());
    }
    for (name, value) in [("width", settings.width), ("height", settings.height)] {
        if !(MIN_SIDE..=MAX_SIDE).contains(&value) {
            return invalid(format!(
                "synthetic image {name} {value} is outside {MIN_SIDE}..={MAX_SIDE} pixels"
            ));
        }
    }
    Ok(())
}

/// Value of a lesion in the label map (0 = no lesion).
fn label_of(lesion: Lesion) -> u8 {
    lesion.index() as u8 + 1
}

fn write_jpeg(path: &Path, rgb: &[u8], width: u32, height: u32) -> Result<()> {
    let file = File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut writer = BufWriter::new(file);
    JpegEncoder::new_with_quality(&mut writer, JPEG_QUALITY)
        .encode(rgb, width, height, ExtendedColorType::Rgb8)
        .map_err(|e| DataError::io(path, std::io::Error::other(e)))?;
    writer.flush().map_err(|e| DataError::io(path, e))
}

fn write_png(path: &Path, grey: &[u8], width: u32, height: u32) -> Result<()> {
    let file = File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut writer = BufWriter::new(file);
    PngEncoder::new(&mut writer)
        .write_image(grey, width, height, ExtendedColorType::L8)
        .map_err(|e| DataError::io(path, std::io::Error::other(e)))?;
    writer.flush().map_err(|e| DataError::io(path, e))
}

type Row = (String, String, [String; NUM_LESIONS]);

fn write_manifest(out: &Path, rows: &[Row]) -> Result<()> {
    crate::fsio::write_atomic_with(&out.join("manifest.csv"), |w| {
        let mut writer = csv::Writer::from_writer(w);
        writer.write_record(["id", "image", "ma", "he", "ex", "se"])?;
        for (id, image, cells) in rows {
            let mut record = vec![id.as_str(), image.as_str()];
            record.extend(cells.iter().map(String::as_str));
            writer.write_record(&record)?;
        }
        writer.flush()
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------

/// One rendered photograph: RGB bytes and a label map (0 = none, 1..=4 = MA, HE, EX, SE).
struct Photo {
    rgb: Vec<u8>,
    label: Vec<u8>,
}

/// The random stream of photograph `index`: independent of every other photograph.
fn image_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

/// Where things are in one photograph.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    /// Field-of-view centre and radius.
    cx: f32,
    cy: f32,
    r: f32,
    /// Optic disc centre and radius.
    disc_x: f32,
    disc_y: f32,
    disc_r: f32,
    /// Macula (fovea) centre.
    mac_x: f32,
    mac_y: f32,
    /// +1 when the macula is to the right of the disc, -1 otherwise.
    temporal: f32,
    /// Size factor relative to the reference 4288x2848 photograph.
    scale: f32,
}

impl Geometry {
    /// Squared distance to the field-of-view centre.
    fn rho2(&self, x: f32, y: f32) -> f32 {
        let (dx, dy) = (x - self.cx, y - self.cy);
        dx * dx + dy * dy
    }

    /// Whether a lesion may cover pixel (x, y).
    fn lesion_allowed(&self, x: f32, y: f32) -> bool {
        let limit = self.r * LESION_LIMIT;
        self.rho2(x, y) <= limit * limit
    }
}

/// Draws the geometry: always the first draws of a photograph's random stream.
fn geometry(rng: &mut ChaCha8Rng, width: u32, height: u32) -> Geometry {
    let (w, h) = (width as f32, height as f32);
    let side = w.min(h);
    let r = side * rng.random_range(0.455..0.485);
    let cx = w / 2.0 + side * rng.random_range(-0.01..0.01);
    let cy = h / 2.0 + side * rng.random_range(-0.008..0.008);
    let temporal = if rng.random::<bool>() { 1.0 } else { -1.0 };
    // Disc diameter 1/8 .. 1/7 of the field-of-view diameter.
    let disc_r = r * rng.random_range(0.125..0.143);
    let disc_x = cx - temporal * r * rng.random_range(0.34..0.42);
    let disc_y = cy + r * rng.random_range(-0.06..0.06);
    // The fovea lies about 2.5 disc diameters temporal to the disc, slightly lower.
    let mac_x = disc_x + temporal * 5.0 * disc_r * rng.random_range(0.9..1.1);
    let mac_y = disc_y + r * rng.random_range(0.0..0.08);
    Geometry {
        cx,
        cy,
        r,
        disc_x,
        disc_y,
        disc_r,
        mac_x,
        mac_y,
        temporal,
        scale: 2.0 * r / REFERENCE_FOV_DIAMETER,
    }
}

/// The albedo (retina under even light) and the label map of one photograph.
struct Canvas {
    width: usize,
    height: usize,
    albedo: Vec<[f32; 3]>,
    label: Vec<u8>,
    geo: Geometry,
}

impl Canvas {
    /// Pixel rows and columns of a box, clipped to the image: (x0, x1, y0, y1), inclusive.
    fn clip(&self, x0: f32, x1: f32, y0: f32, y1: f32) -> Option<(usize, usize, usize, usize)> {
        let max_x = self.width as f32 - 1.0;
        let max_y = self.height as f32 - 1.0;
        let (x0, x1) = (x0.floor().max(0.0), x1.ceil().min(max_x));
        let (y0, y1) = (y0.floor().max(0.0), y1.ceil().min(max_y));
        if x0 > x1 || y0 > y1 {
            return None;
        }
        Some((x0 as usize, x1 as usize, y0 as usize, y1 as usize))
    }
}

fn render(seed: u64, index: u64, width: u32, height: u32) -> Photo {
    let mut rng = image_rng(seed, index);
    let geo = geometry(&mut rng, width, height);
    let (w, h) = (width as usize, height as usize);
    let mut canvas = Canvas {
        width: w,
        height: h,
        albedo: vec![[0.0; 3]; w * h],
        label: vec![0; w * h],
        geo,
    };
    paint_background(&mut canvas, &mut rng);
    paint_macula(&mut canvas, &mut rng);
    paint_disc(&mut canvas, &mut rng);
    paint_vessels(&mut canvas, &mut rng);
    paint_lesions(&mut canvas, &mut rng);
    let rgb = illuminate(&canvas, &mut rng);
    Photo {
        rgb,
        label: canvas.label,
    }
}

/// Smooth value noise in [-1, 1] on a square grid of `cell` pixels.
struct Noise {
    cols: usize,
    cell: f32,
    values: Vec<f32>,
}

impl Noise {
    fn new(rng: &mut ChaCha8Rng, width: usize, height: usize, cell: f32) -> Noise {
        let cell = cell.max(1.0);
        let cols = (width as f32 / cell).ceil() as usize + 2;
        let rows = (height as f32 / cell).ceil() as usize + 2;
        let values = (0..cols * rows)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        Noise { cols, cell, values }
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        let (fx, fy) = (x.max(0.0) / self.cell, y.max(0.0) / self.cell);
        let (ix, iy) = (fx as usize, fy as usize);
        let (tx, ty) = (smooth(fx - ix as f32), smooth(fy - iy as f32));
        let i = iy * self.cols + ix;
        let v = &self.values;
        let top = v[i] + (v[i + 1] - v[i]) * tx;
        let bottom = v[i + self.cols] + (v[i + self.cols + 1] - v[i + self.cols]) * tx;
        top + (bottom - top) * ty
    }
}

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

/// Hash noise in [-1, 1) for one pixel.
fn hash_noise(x: usize, y: usize, salt: u32) -> f32 {
    let mut h = (x as u32).wrapping_mul(0x8da6_b343)
        ^ (y as u32).wrapping_mul(0xd816_3841)
        ^ salt.wrapping_mul(0xcb1a_b31f);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2c1b_3c6d);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297a_2d39);
    h ^= h >> 15;
    (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
}

/// Orange-red retina with mild texture inside the field of view; black outside.
fn paint_background(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let geo = canvas.geo;
    let base = [
        rng.random_range(170.0..210.0f32),
        rng.random_range(72.0..96.0f32),
        rng.random_range(26.0..42.0f32),
    ];
    let coarse = Noise::new(rng, canvas.width, canvas.height, 0.05 * geo.r);
    let fine = Noise::new(rng, canvas.width, canvas.height, 0.012 * geo.r);
    let salt: u32 = rng.random();
    let r2 = geo.r * geo.r;
    let Some((x0, x1, y0, y1)) = canvas.clip(
        geo.cx - geo.r,
        geo.cx + geo.r,
        geo.cy - geo.r,
        geo.cy + geo.r,
    ) else {
        return;
    };
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (xf, yf) = (x as f32, y as f32);
            if geo.rho2(xf, yf) > r2 {
                continue;
            }
            let c = coarse.at(xf, yf);
            let f = fine.at(xf, yf);
            let n = hash_noise(x, y, salt);
            let t = 1.0 + 0.04 * c + 0.035 * f + 0.015 * n;
            // The choroid shows through unevenly: green and blue vary a little more.
            let t2 = t + 0.05 * c;
            canvas.albedo[y * canvas.width + x] = [base[0] * t, base[1] * t2, base[2] * t2];
        }
    }
}

/// The macula: a darker, browner area with a darker fovea at its centre.
fn paint_macula(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let geo = canvas.geo;
    let sigma = geo.r * rng.random_range(0.11..0.15);
    let depth = rng.random_range(0.28..0.4f32);
    let fovea = sigma * 0.22;
    let reach = 3.0 * sigma;
    let Some((x0, x1, y0, y1)) = canvas.clip(
        geo.mac_x - reach,
        geo.mac_x + reach,
        geo.mac_y - reach,
        geo.mac_y + reach,
    ) else {
        return;
    };
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (dx, dy) = (x as f32 - geo.mac_x, y as f32 - geo.mac_y);
            let d2 = dx * dx + dy * dy;
            let g = (-d2 / (2.0 * sigma * sigma)).exp();
            let gf = (-d2 / (2.0 * fovea * fovea)).exp();
            let px = &mut canvas.albedo[y * canvas.width + x];
            let k = 1.0 - depth * g - 0.12 * gf;
            px[0] *= k;
            px[1] *= k * (1.0 - 0.1 * g);
            px[2] *= k * (1.0 - 0.05 * g);
        }
    }
}

/// The optic disc: a pale yellowish oval with a brighter cup and a soft rim.
fn paint_disc(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let geo = canvas.geo;
    let rx = geo.disc_r * rng.random_range(0.9..0.98);
    let ry = geo.disc_r * rng.random_range(1.0..1.08);
    let rim = [
        rng.random_range(235.0..252.0f32),
        rng.random_range(170.0..200.0f32),
        rng.random_range(90.0..125.0f32),
    ];
    let cup = [255.0, rng.random_range(225.0..245.0f32), 185.0];
    let cup_r = rng.random_range(0.3..0.5f32);
    let cup_x = geo.disc_x + geo.temporal * rx * rng.random_range(0.05..0.2);
    let reach = ry * 1.4;
    let Some((x0, x1, y0, y1)) = canvas.clip(
        geo.disc_x - reach,
        geo.disc_x + reach,
        geo.disc_y - reach,
        geo.disc_y + reach,
    ) else {
        return;
    };
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (xf, yf) = (x as f32, y as f32);
            let d = (((xf - geo.disc_x) / rx).powi(2) + ((yf - geo.disc_y) / ry).powi(2)).sqrt();
            let a = 0.92 * smooth(((1.1 - d) / 0.35).clamp(0.0, 1.0));
            let dc = (((xf - cup_x) / rx).powi(2) + ((yf - geo.disc_y) / ry).powi(2)).sqrt();
            let ac = 0.85 * smooth(((cup_r - dc) / (0.5 * cup_r)).clamp(0.0, 1.0));
            if a <= 0.0 {
                continue;
            }
            let px = &mut canvas.albedo[y * canvas.width + x];
            for c in 0..3 {
                px[c] += (rim[c] - px[c]) * a;
                px[c] += (cup[c] - px[c]) * ac;
            }
        }
    }
}

/// Opacity of the veins (index 0) and arteries (index 1), combined by maximum.
struct VesselLayers {
    width: usize,
    height: usize,
    opacity: [Vec<f32>; 2],
}

impl VesselLayers {
    /// A capsule from `p` to `q` of the given width, antialiased.
    fn segment(&mut self, kind: usize, p: (f32, f32), q: (f32, f32), width: f32, strength: f32) {
        let half = width / 2.0;
        let pad = half + 1.0;
        let x0 = (p.0.min(q.0) - pad).floor().max(0.0) as usize;
        let y0 = (p.1.min(q.1) - pad).floor().max(0.0) as usize;
        let x1 = ((p.0.max(q.0) + pad).ceil().max(0.0) as usize).min(self.width - 1);
        let y1 = ((p.1.max(q.1) + pad).ceil().max(0.0) as usize).min(self.height - 1);
        let (vx, vy) = (q.0 - p.0, q.1 - p.1);
        let len2 = (vx * vx + vy * vy).max(1e-6);
        let peak = strength * width.min(1.0);
        let layer = &mut self.opacity[kind];
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (wx, wy) = (x as f32 - p.0, y as f32 - p.1);
                let t = ((wx * vx + wy * vy) / len2).clamp(0.0, 1.0);
                let (dx, dy) = (wx - t * vx, wy - t * vy);
                let d = (dx * dx + dy * dy).sqrt();
                let a = (half + 0.5 - d).clamp(0.0, 1.0) * peak;
                let o = &mut layer[y * self.width + x];
                if a > *o {
                    *o = a;
                }
            }
        }
    }
}

/// One growing vessel.
struct Vessel {
    x: f32,
    y: f32,
    heading: f32,
    curvature: f32,
    /// Curvature kept per step (straightening).
    decay: f32,
    width: f32,
    /// 0 = vein, 1 = artery.
    kind: usize,
    max_len: f32,
}

/// Vessels: arcades above and below the macula, nasal vessels and thin macular branches,
/// each a vein and an artery, growing from the disc with branches that taper to a pixel.
fn paint_vessels(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let geo = canvas.geo;
    let t = geo.temporal;
    let main_width = (0.014 * 2.0 * geo.r * rng.random_range(0.85..1.15)).max(1.5);
    let step = (0.02 * geo.r).max(1.0);
    let mut roots = Vec::new();
    for superior in [true, false] {
        let up = if superior { -1.0 } else { 1.0 };
        for kind in 0..2 {
            let width = main_width * if kind == 0 { 1.0 } else { 0.75 };
            // Temporal arcade: leaves the disc vertically, curves around the macula.
            let tilt = rng.random_range(0.05..0.3f32) + 0.1 * kind as f32;
            let heading = (up * tilt.cos()).atan2(t * tilt.sin());
            let k0 = 1.0 / (geo.r * rng.random_range(0.3..0.4));
            let turn = rng.random_range(1.1..1.4f32);
            let curvature = -up * t * k0;
            roots.push(Vessel {
                x: geo.disc_x,
                y: geo.disc_y + up * 0.2 * geo.disc_r,
                heading,
                curvature,
                decay: 1.0 - k0 * step / turn,
                width,
                kind,
                max_len: 2.4 * geo.r,
            });
            // Nasal vessel.
            let angle = rng.random_range(0.25..0.9f32) + 0.15 * kind as f32;
            roots.push(Vessel {
                x: geo.disc_x,
                y: geo.disc_y,
                heading: (up * angle.sin()).atan2(-t * angle.cos()),
                curvature: rng.random_range(-1.0..1.0) / geo.r,
                decay: 0.98,
                width: width * 0.7,
                kind,
                max_len: 1.2 * geo.r,
            });
            // Thin macular branch.
            let angle = rng.random_range(0.1..0.35f32);
            roots.push(Vessel {
                x: geo.disc_x,
                y: geo.disc_y,
                heading: (up * angle.sin()).atan2(t * angle.cos()),
                curvature: -up * t * rng.random_range(0.0..1.5) / geo.r,
                decay: 0.98,
                width: width * 0.35,
                kind,
                max_len: 0.6 * geo.r,
            });
        }
    }

    let mut layers = VesselLayers {
        width: canvas.width,
        height: canvas.height,
        opacity: [
            vec![0.0; canvas.width * canvas.height],
            vec![0.0; canvas.width * canvas.height],
        ],
    };
    let fov_limit2 = (0.985 * geo.r).powi(2);
    let avascular2 = (0.12 * geo.r).powi(2);
    // Width halves over about 0.9 field-of-view radius of length.
    let taper = 0.5f32.powf(step / (0.9 * geo.r));
    let mut stack = roots;
    stack.reverse();
    let mut budget = 600;
    while let Some(mut v) = stack.pop() {
        budget -= 1;
        if budget == 0 {
            break;
        }
        let strength = if v.kind == 0 { 0.92 } else { 0.8 };
        // Thin down to under a pixel by the vessel's full length.
        let taper = taper.min((0.7 / v.width).powf(step / v.max_len));
        let mut len = 0.0;
        let mut wander = 0.0f32;
        loop {
            // Tortuosity: a slowly wandering extra curvature, plus a little jitter.
            wander = 0.8 * wander + rng.random_range(-0.6..0.6f32) / geo.r;
            v.heading += (v.curvature + wander) * step + rng.random_range(-0.03..0.03f32);
            v.curvature *= v.decay;
            let nx = v.x + step * v.heading.cos();
            let ny = v.y + step * v.heading.sin();
            let nw = v.width * taper;
            layers.segment(v.kind, (v.x, v.y), (nx, ny), v.width, strength);
            v.x = nx;
            v.y = ny;
            v.width = nw;
            len += step;
            let (mx, my) = (nx - geo.mac_x, ny - geo.mac_y);
            if geo.rho2(nx, ny) > fov_limit2
                || v.width < 0.6
                || len > v.max_len
                || mx * mx + my * my < avascular2
            {
                break;
            }
            let branch_p = 0.09 * (step / (0.02 * geo.r));
            if v.width > 1.0 && len > 2.0 * geo.disc_r && rng.random::<f32>() < branch_p {
                let side = if rng.random::<bool>() { 1.0 } else { -1.0 };
                stack.push(Vessel {
                    x: v.x,
                    y: v.y,
                    heading: v.heading + side * rng.random_range(0.4..1.1f32),
                    curvature: rng.random_range(-1.5..1.5) / geo.r,
                    decay: 0.98,
                    width: v.width * rng.random_range(0.45..0.75),
                    kind: v.kind,
                    max_len: geo.r * rng.random_range(0.3..0.9),
                });
                v.width *= 0.93;
            }
        }
    }

    // Darkening per channel: veins dark red, arteries a lighter red.
    let darken = [[0.55f32, 0.72, 0.58], [0.32, 0.52, 0.42]];
    for (i, px) in canvas.albedo.iter_mut().enumerate() {
        let (av, aa) = (layers.opacity[0][i], layers.opacity[1][i]);
        if av == 0.0 && aa == 0.0 {
            continue;
        }
        for c in 0..3 {
            px[c] *= (1.0 - av * darken[0][c]) * (1.0 - aa * darken[1][c]);
        }
    }
}

/// A rotated ellipse.
#[derive(Clone, Copy, Debug)]
struct Ellipse {
    x: f32,
    y: f32,
    a: f32,
    b: f32,
    cos: f32,
    sin: f32,
}

impl Ellipse {
    fn new(x: f32, y: f32, a: f32, b: f32, angle: f32) -> Ellipse {
        Ellipse {
            x,
            y,
            a,
            b,
            cos: angle.cos(),
            sin: angle.sin(),
        }
    }

    fn contains(&self, x: f32, y: f32) -> bool {
        let (dx, dy) = (x - self.x, y - self.y);
        let u = (dx * self.cos + dy * self.sin) / self.a;
        let v = (-dx * self.sin + dy * self.cos) / self.b;
        u * u + v * v <= 1.0
    }

    /// Half extents of the bounding box.
    fn extent(&self) -> (f32, f32) {
        let ex = ((self.a * self.cos).powi(2) + (self.b * self.sin).powi(2)).sqrt();
        let ey = ((self.a * self.sin).powi(2) + (self.b * self.cos).powi(2)).sqrt();
        (ex, ey)
    }
}

/// Bounding box of a union of ellipses, with a margin.
fn shape_box(shape: &[Ellipse], margin: f32) -> (f32, f32, f32, f32) {
    let mut b = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for e in shape {
        let (ex, ey) = e.extent();
        b.0 = b.0.min(e.x - ex - margin);
        b.1 = b.1.max(e.x + ex + margin);
        b.2 = b.2.min(e.y - ey - margin);
        b.3 = b.3.max(e.y + ey + margin);
    }
    b
}

/// Paints a union of ellipses with a solid colour (with slight texture) and labels it.
fn paint_solid(
    canvas: &mut Canvas,
    shape: &[Ellipse],
    lesion: Lesion,
    colour: [f32; 3],
    salt: u32,
) {
    let (bx0, bx1, by0, by1) = shape_box(shape, 1.0);
    let Some((x0, x1, y0, y1)) = canvas.clip(bx0, bx1, by0, by1) else {
        return;
    };
    let code = label_of(lesion);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (xf, yf) = (x as f32, y as f32);
            if !canvas.geo.lesion_allowed(xf, yf) || !shape.iter().any(|e| e.contains(xf, yf)) {
                continue;
            }
            let i = y * canvas.width + x;
            let t = 1.0 + 0.05 * hash_noise(x, y, salt);
            canvas.albedo[i] = [colour[0] * t, colour[1] * t, colour[2] * t];
            canvas.label[i] = code;
        }
    }
}

/// A lesion site inside the field of view, away from the optic disc.
fn lesion_site(rng: &mut ChaCha8Rng, geo: &Geometry, size: f32) -> (f32, f32) {
    let limit = (0.85 * geo.r - size).max(0.2 * geo.r);
    let mut site = (geo.cx, geo.cy);
    for _ in 0..32 {
        let rho = limit * rng.random::<f32>().sqrt();
        let angle = rng.random_range(0.0..2.0 * PI);
        site = (geo.cx + rho * angle.cos(), geo.cy + rho * angle.sin());
        let (dx, dy) = (site.0 - geo.disc_x, site.1 - geo.disc_y);
        let keep_off = 1.4 * geo.disc_r + size;
        if dx * dx + dy * dy > keep_off * keep_off {
            break;
        }
    }
    site
}

/// How many lesions of a type: zero with probability `p_none`, else 1..=max, small counts
/// likelier.
fn lesion_count(rng: &mut ChaCha8Rng, p_none: f32, max: usize) -> usize {
    if rng.random::<f32>() < p_none {
        return 0;
    }
    1 + (rng.random::<f32>().powf(1.5) * max as f32) as usize % max
}

/// Lesions, painted SE, HE, EX, MA: a pixel belongs to the last lesion painted over it.
fn paint_lesions(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let geo = canvas.geo;
    let s = geo.scale;
    let n_se = lesion_count(rng, 0.5, 4);
    let n_he = lesion_count(rng, 0.25, 8);
    let n_ex = lesion_count(rng, 0.2, 6);
    let n_ma = lesion_count(rng, 0.1, 24);

    for _ in 0..n_se {
        paint_soft_exudate(canvas, rng);
    }

    for _ in 0..n_he {
        let size = (rng.random_range(10.0..50.0f32) * s).max(1.8);
        let (x, y) = lesion_site(rng, &geo, 2.0 * size);
        let colour = [
            rng.random_range(95.0..130.0f32),
            rng.random_range(18.0..32.0f32),
            rng.random_range(12.0..24.0f32),
        ];
        let mut shape = Vec::new();
        if rng.random::<f32>() < 0.35 {
            // Flame-shaped: elongated along the nerve fibres, which leave the disc radially.
            let along = (y - geo.disc_y).atan2(x - geo.disc_x);
            let (c, sn) = (along.cos(), along.sin());
            let parts = rng.random_range(2..4);
            for k in 0..parts {
                let f = 1.0 - 0.25 * k as f32;
                let off = size * 1.4 * k as f32;
                shape.push(Ellipse::new(
                    x + off * c,
                    y + off * sn,
                    size * 1.6 * f,
                    (size * 0.55 * f).max(1.0),
                    along + rng.random_range(-0.15..0.15),
                ));
            }
        } else {
            let parts = rng.random_range(1..5);
            for _ in 0..parts {
                let a = size * rng.random_range(0.5..1.0f32);
                shape.push(Ellipse::new(
                    x + size * rng.random_range(-0.6..0.6f32),
                    y + size * rng.random_range(-0.6..0.6f32),
                    a.max(1.2),
                    (a * rng.random_range(0.6..1.0f32)).max(1.2),
                    rng.random_range(0.0..PI),
                ));
            }
        }
        let salt = rng.random();
        paint_solid(canvas, &shape, Lesion::HE, colour, salt);
    }

    for _ in 0..n_ex {
        let spread = (rng.random_range(25.0..150.0f32) * s).max(3.0);
        let (x, y) = lesion_site(rng, &geo, spread);
        let colour = [
            rng.random_range(245.0..255.0f32),
            rng.random_range(215.0..240.0f32),
            rng.random_range(75.0..115.0f32),
        ];
        let ring = rng.random::<f32>() < 0.25;
        let specks = rng.random_range(4..20);
        let mut shape = Vec::with_capacity(specks);
        for _ in 0..specks {
            let angle = rng.random_range(0.0..2.0 * PI);
            let rho = if ring {
                spread * rng.random_range(0.75..1.0f32)
            } else {
                spread * rng.random::<f32>().sqrt()
            };
            let a = (rng.random_range(2.5..15.0f32) * s).max(0.9);
            shape.push(Ellipse::new(
                x + rho * angle.cos(),
                y + rho * angle.sin(),
                a,
                (a * rng.random_range(0.6..1.0f32)).max(0.9),
                rng.random_range(0.0..PI),
            ));
        }
        let salt = rng.random();
        paint_solid(canvas, &shape, Lesion::EX, colour, salt);
    }

    for _ in 0..n_ma {
        let radius = (rng.random_range(3.0..8.0f32) * s).max(rng.random_range(1.0..2.0));
        let (x, y) = lesion_site(rng, &geo, radius);
        let colour = [
            rng.random_range(105.0..140.0f32),
            rng.random_range(22.0..38.0f32),
            rng.random_range(14.0..26.0f32),
        ];
        let shape = [Ellipse::new(
            x,
            y,
            radius,
            radius * rng.random_range(0.85..1.0f32),
            rng.random_range(0.0..PI),
        )];
        let salt = rng.random();
        paint_solid(canvas, &shape, Lesion::MA, colour, salt);
    }
}

/// A cotton-wool spot: a pale patch blended with blurred edges; its mask is the core shape.
fn paint_soft_exudate(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let geo = canvas.geo;
    let size = (rng.random_range(20.0..60.0f32) * geo.scale).max(2.5);
    let (x, y) = lesion_site(rng, &geo, 2.0 * size);
    let colour = [
        rng.random_range(225.0..245.0f32),
        rng.random_range(200.0..225.0f32),
        rng.random_range(160.0..195.0f32),
    ];
    let strength = rng.random_range(0.65..0.85f32);
    let parts = rng.random_range(2..5);
    let mut shape = Vec::with_capacity(parts);
    for _ in 0..parts {
        let a = size * rng.random_range(0.5..1.0f32);
        shape.push(Ellipse::new(
            x + size * rng.random_range(-0.6..0.6f32),
            y + size * rng.random_range(-0.6..0.6f32),
            a,
            a * rng.random_range(0.55..1.0f32),
            rng.random_range(0.0..PI),
        ));
    }
    let sigma = (0.3 * size).max(0.8);
    let radius = (3.0 * sigma).ceil() as usize;
    let salt: u32 = rng.random();
    let (bx0, bx1, by0, by1) = shape_box(&shape, radius as f32 + 1.0);
    let Some((x0, x1, y0, y1)) = canvas.clip(bx0, bx1, by0, by1) else {
        return;
    };
    let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);
    let mut core = vec![0.0f32; bw * bh];
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (xf, yf) = (x as f32, y as f32);
            if shape.iter().any(|e| e.contains(xf, yf)) {
                core[(y - y0) * bw + (x - x0)] = 1.0;
            }
        }
    }
    let alpha = blur(&core, bw, bh, sigma, radius);
    let code = label_of(Lesion::SE);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let j = (y - y0) * bw + (x - x0);
            let (xf, yf) = (x as f32, y as f32);
            // Outside the lesion limit the (faint) halo only fades, never reaching the rim.
            if !geo.lesion_allowed(xf, yf) {
                continue;
            }
            let fluff = 0.85 + 0.15 * hash_noise(x, y, salt);
            let a = (alpha[j] * strength * fluff).clamp(0.0, 1.0);
            let i = y * canvas.width + x;
            let px = &mut canvas.albedo[i];
            for c in 0..3 {
                px[c] += (colour[c] - px[c]) * a;
            }
            if core[j] > 0.0 {
                canvas.label[i] = code;
            }
        }
    }
}

/// Separable Gaussian blur of a small grid, zero outside it.
fn blur(src: &[f32], w: usize, h: usize, sigma: f32, radius: usize) -> Vec<f32> {
    let kernel: Vec<f32> = (0..=2 * radius)
        .map(|k| {
            let d = k as f32 - radius as f32;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let mut tmp = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (k, kv) in kernel.iter().enumerate() {
                let sx = x as isize + k as isize - radius as isize;
                if sx >= 0 && (sx as usize) < w {
                    acc += src[y * w + sx as usize] * kv;
                }
            }
            tmp[y * w + x] = acc;
        }
    }
    let mut out = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (k, kv) in kernel.iter().enumerate() {
                let sy = y as isize + k as isize - radius as isize;
                if sy >= 0 && (sy as usize) < h {
                    acc += tmp[sy as usize * w + x] * kv;
                }
            }
            out[y * w + x] = acc;
        }
    }
    out
}

/// Multiplies the albedo by the illumination (gradient, low-frequency unevenness,
/// vignetting, soft rim) and quantises to RGB bytes; black outside the field of view.
fn illuminate(canvas: &Canvas, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let geo = canvas.geo;
    let exposure = rng.random_range(0.92..1.06f32);
    let angle = rng.random_range(0.0..2.0 * PI);
    let amount = rng.random_range(0.08..0.2f32);
    let (gx, gy) = (amount * angle.cos() / geo.r, amount * angle.sin() / geo.r);
    let low = Noise::new(rng, canvas.width, canvas.height, 0.45 * geo.r);
    let vignette = rng.random_range(0.35..0.5f32);
    let rim = 0.025f32;
    let salt: u32 = rng.random();
    let mut rgb = vec![0u8; canvas.width * canvas.height * 3];
    let r2 = geo.r * geo.r;
    for y in 0..canvas.height {
        for x in 0..canvas.width {
            let (xf, yf) = (x as f32, y as f32);
            let d2 = geo.rho2(xf, yf);
            if d2 >= r2 {
                continue;
            }
            let rho = d2.sqrt() / geo.r;
            let edge = smooth(((1.0 - rho) / rim).clamp(0.0, 1.0));
            let even =
                (1.0 + gx * (xf - geo.cx) + gy * (yf - geo.cy) + 0.08 * low.at(xf, yf)).max(0.0);
            let light = exposure * even * (1.0 - vignette * rho.powf(2.2)) * edge;
            let noise = 1.2 * hash_noise(x, y, salt);
            let a = canvas.albedo[y * canvas.width + x];
            let o = (y * canvas.width + x) * 3;
            for c in 0..3 {
                rgb[o + c] = (a[c] * light + noise).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn settings(images: usize, seed: u64) -> SynthSettings {
        SynthSettings {
            images,
            seed,
            width: 256,
            height: 192,
        }
    }

    fn read_bytes(path: &Path) -> Vec<u8> {
        fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Every file under `dir`, relative path -> bytes, sorted.
    fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((p.strip_prefix(dir).unwrap().to_path_buf(), read_bytes(&p)));
                }
            }
        }
        out.sort();
        out
    }

    fn manifest_rows(dir: &Path) -> (Vec<String>, Vec<Vec<String>>) {
        let mut reader = csv::Reader::from_path(dir.join("manifest.csv")).unwrap();
        let header = reader.headers().unwrap().iter().map(String::from).collect();
        let rows = reader
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        (header, rows)
    }

    #[test]
    fn same_seed_gives_identical_files_and_images_are_independent() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let c = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        generate(a.path(), &settings(3, 7)).unwrap();
        generate(b.path(), &settings(3, 7)).unwrap();
        assert_eq!(tree(a.path()), tree(b.path()));

        generate(c.path(), &settings(3, 8)).unwrap();
        let image = Path::new("images/SYN_0001.jpg");
        assert_ne!(
            read_bytes(&a.path().join(image)),
            read_bytes(&c.path().join(image))
        );

        // Photograph 1 and its masks do not depend on how many photographs there are.
        generate(d.path(), &settings(2, 7)).unwrap();
        let (_, rows3) = manifest_rows(a.path());
        let (_, rows2) = manifest_rows(d.path());
        assert_eq!(rows3[..2], rows2[..]);
        for row in &rows2 {
            for rel in row[1..].iter().filter(|cell| !cell.is_empty()) {
                assert_eq!(
                    read_bytes(&a.path().join(rel)),
                    read_bytes(&d.path().join(rel)),
                    "{rel}"
                );
            }
        }
    }

    #[test]
    fn manifest_masks_and_field_of_view() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(6, 3);
        let summary = generate(dir.path(), &s).unwrap();
        assert_eq!(summary.images, 6);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");

        let (header, rows) = manifest_rows(dir.path());
        assert_eq!(header, ["id", "image", "ma", "he", "ex", "se"]);
        assert_eq!(rows.len(), 6);
        let mut counted = [0u64; NUM_LESIONS];
        let mut empty_cells = 0;
        for (k, row) in rows.iter().enumerate() {
            let id = format!("SYN_{:04}", k + 1);
            assert_eq!(row[0], id);
            assert_eq!(row[1], format!("images/{id}.jpg"));
            let photo = image::open(dir.path().join(&row[1])).unwrap().to_rgb8();
            assert_eq!(photo.dimensions(), (s.width, s.height));

            let mut rng = image_rng(s.seed, k as u64);
            let geo = geometry(&mut rng, s.width, s.height);
            for lesion in LESIONS {
                let cell = &row[2 + lesion.index()];
                let path = dir.path().join(format!("masks/{}/{id}.png", lesion.code()));
                if cell.is_empty() {
                    empty_cells += 1;
                    assert!(
                        !path.exists(),
                        "{} written for an empty cell",
                        path.display()
                    );
                    continue;
                }
                assert_eq!(*cell, format!("masks/{}/{id}.png", lesion.code()));
                let mask = image::open(&path).unwrap();
                assert_eq!(mask.color(), image::ColorType::L8);
                let mask = mask.to_luma8();
                assert_eq!(mask.dimensions(), (s.width, s.height));
                let mut n = 0;
                for (x, y, p) in mask.enumerate_pixels() {
                    assert!(p[0] == 0 || p[0] == 255, "mask value {}", p[0]);
                    if p[0] == 255 {
                        n += 1;
                        assert!(
                            geo.rho2(x as f32, y as f32) <= geo.r * geo.r,
                            "{} pixel ({x}, {y}) outside the field of view",
                            lesion.code()
                        );
                    }
                }
                assert!(n > 0, "{} written but empty", path.display());
                counted[lesion.index()] += n;
            }
        }
        assert_eq!(counted, summary.lesion_pixels);
        for lesion in LESIONS {
            assert!(
                counted[lesion.index()] > 0,
                "no {} in 6 images",
                lesion.code()
            );
        }
        assert!(empty_cells > 0, "no empty mask cell to exercise");
    }

    /// Mean RGB of the pixels selected by `keep`.
    fn mean(photo: &image::RgbImage, keep: impl Fn(u32, u32) -> bool) -> ([f64; 3], usize) {
        let mut sum = [0f64; 3];
        let mut n = 0;
        for (x, y, p) in photo.enumerate_pixels() {
            if keep(x, y) {
                for c in 0..3 {
                    sum[c] += p[c] as f64;
                }
                n += 1;
            }
        }
        let n_f = n.max(1) as f64;
        ([sum[0] / n_f, sum[1] / n_f, sum[2] / n_f], n)
    }

    #[test]
    fn colours_are_plausible() {
        let dir = tempfile::tempdir().unwrap();
        let s = SynthSettings {
            images: 6,
            seed: 11,
            width: 384,
            height: 256,
        };
        generate(dir.path(), &s).unwrap();
        let (_, rows) = manifest_rows(dir.path());
        // Per lesion: sum of mean colours over images where present, and image count.
        let mut lesion_sum = [[0f64; 3]; NUM_LESIONS];
        let mut lesion_n = [0usize; NUM_LESIONS];
        let mut background = [0f64; 3];
        for (k, row) in rows.iter().enumerate() {
            let photo = image::open(dir.path().join(&row[1])).unwrap().to_rgb8();
            let mut rng = image_rng(s.seed, k as u64);
            let geo = geometry(&mut rng, s.width, s.height);
            let masks: Vec<Option<image::GrayImage>> = (0..NUM_LESIONS)
                .map(|l| {
                    let cell = &row[2 + l];
                    (!cell.is_empty())
                        .then(|| image::open(dir.path().join(cell)).unwrap().to_luma8())
                })
                .collect();
            let any = |x: u32, y: u32| masks.iter().flatten().any(|m| m.get_pixel(x, y)[0] > 0);

            let outside = mean(&photo, |x, y| {
                geo.rho2(x as f32, y as f32) > (1.03 * geo.r).powi(2)
            });
            let outside_mean = (outside.0[0] + outside.0[1] + outside.0[2]) / 3.0;
            assert!(outside_mean < 10.0, "outside the FOV mean {outside_mean}");

            // Background: inside the central field, no lesion, off the optic disc.
            let (bg, _) = mean(&photo, |x, y| {
                let (xf, yf) = (x as f32, y as f32);
                let (dx, dy) = (xf - geo.disc_x, yf - geo.disc_y);
                geo.rho2(xf, yf) < (0.8 * geo.r).powi(2)
                    && dx * dx + dy * dy > (1.5 * geo.disc_r).powi(2)
                    && !any(x, y)
            });
            assert!(
                (130.0..230.0).contains(&bg[0]) && bg[1] < 0.7 * bg[0] && bg[2] < bg[1],
                "background {bg:?} is not orange-red"
            );
            for c in 0..3 {
                background[c] += bg[c] / rows.len() as f64;
            }

            for (l, mask) in masks.iter().enumerate() {
                if let Some(mask) = mask {
                    let (m, n) = mean(&photo, |x, y| mask.get_pixel(x, y)[0] > 0);
                    assert!(n > 0);
                    for c in 0..3 {
                        lesion_sum[l][c] += m[c];
                    }
                    lesion_n[l] += 1;
                }
            }
        }
        let lesion_mean = |l: Lesion| {
            let n = lesion_n[l.index()] as f64;
            assert!(n > 0.0, "no {}", l.code());
            lesion_sum[l.index()].map(|v| v / n)
        };
        let brightness = |c: [f64; 3]| c[0] + c[1] + c[2];
        for l in [Lesion::MA, Lesion::HE] {
            let m = lesion_mean(l);
            assert!(
                brightness(m) < 0.85 * brightness(background),
                "{} {m:?} not darker than background {background:?}",
                l.code()
            );
            assert!(
                m[1] / m[0] < background[1] / background[0],
                "{} {m:?} not redder than background {background:?}",
                l.code()
            );
        }
        let ex = lesion_mean(Lesion::EX);
        assert!(
            ex[0] > background[0] && ex[1] > background[1] + 40.0 && ex[2] < 0.75 * ex[1],
            "EX {ex:?} not bright yellow against background {background:?}"
        );
        let se = lesion_mean(Lesion::SE);
        assert!(
            brightness(se) > brightness(background) && se[2] > background[2] + 30.0,
            "SE {se:?} not pale against background {background:?}"
        );
    }

    #[test]
    fn bad_settings_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let bad = [
            SynthSettings {
                images: 0,
                ..SynthSettings::default()
            },
            SynthSettings {
                width: 63,
                ..SynthSettings::default()
            },
            SynthSettings {
                height: 0,
                ..SynthSettings::default()
            },
            SynthSettings {
                width: 8193,
                ..SynthSettings::default()
            },
        ];
        for s in bad {
            let err = generate(dir.path(), &s).unwrap_err();
            assert!(matches!(err, DataError::Invalid { .. }), "{s:?}: {err}");
        }
        assert!(!dir.path().join("manifest.csv").exists());
    }

    #[test]
    fn smallest_size_and_many_images_ids() {
        let dir = tempfile::tempdir().unwrap();
        let s = SynthSettings {
            images: 2,
            seed: 1,
            width: MIN_SIDE,
            height: MIN_SIDE,
        };
        generate(dir.path(), &s).unwrap();
        let (_, rows) = manifest_rows(dir.path());
        assert_eq!(rows[1][0], "SYN_0002");
    }

    /// Writes a sample into /tmp/synth_look for looking at it:
    /// `cargo test -p fovea-data --lib synth::tests::look -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn look() {
        let out = Path::new("/tmp/synth_look");
        let start = std::time::Instant::now();
        let summary = generate(out, &SynthSettings::default()).unwrap();
        println!("8 x 768x512 in {:?}: {summary:?}", start.elapsed());
        let big = SynthSettings {
            images: 1,
            seed: 0,
            width: 4288,
            height: 2848,
        };
        let start = std::time::Instant::now();
        generate(&out.join("big"), &big).unwrap();
        println!("1 x 4288x2848 in {:?}", start.elapsed());
        // PNG copies to look at, and the masks drawn over the photographs.
        let png = out.join("png");
        fs::create_dir_all(&png).unwrap();
        for k in 1..=8 {
            let id = format!("SYN_{k:04}");
            let photo = image::open(out.join(format!("images/{id}.jpg"))).unwrap();
            photo.save(png.join(format!("{id}.png"))).unwrap();
            let mut overlay = photo.to_rgb8();
            let colours = [[0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255]];
            for lesion in LESIONS {
                let path = out.join(format!("masks/{}/{id}.png", lesion.code()));
                if let Ok(mask) = image::open(path) {
                    for (x, y, p) in mask.to_luma8().enumerate_pixels() {
                        if p[0] > 0 {
                            overlay.put_pixel(x, y, image::Rgb(colours[lesion.index()]));
                        }
                    }
                }
            }
            overlay.save(png.join(format!("{id}_masks.png"))).unwrap();
        }
        let photo = image::open(out.join("big/images/SYN_0001.jpg")).unwrap();
        photo.save(png.join("big.png")).unwrap();
        photo
            .crop_imm(1400, 700, 1000, 800)
            .save(png.join("big_crop.png"))
            .unwrap();
    }
}
