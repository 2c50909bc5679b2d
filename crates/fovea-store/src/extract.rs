//! Patch extraction: from a dataset to a patch store (CONTRACTS 2).
//!
//! Photographs are processed in parallel (rayon) in small ordered batches, so memory holds
//! only a few decoded photographs at a time whatever the dataset's size, while a writer
//! thread appends the previous batch to `patches.npy` and `index.csv` in image order.
//! Everything is written into a `.NAME.partial` folder beside the target and renamed into
//! place at the end: an interrupted run never leaves a store that looks whole, and the next
//! run removes the partial folder and starts again.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use fovea_data::{
    count_in_rect, fov_grid, load_sample, Dataset, ImageRecord, Split, LESIONS, NUM_LESIONS,
};
use rand::seq::index::sample as sample_indices;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::components::components;
use crate::error::{Result, StoreError};
use crate::geometry::{centred_position, grid_positions, label_region};
use crate::index::{IndexWriter, PatchKind, PatchRow};
use crate::npy::NpyPatchWriter;
use crate::settings::ExtractSettings;
use crate::split::{assign_splits, read_split_file};
use crate::stats::StoreStats;

/// Progress reports from a long-running job. Libraries report; the CLI draws the bars.
pub trait Progress: Sync {
    /// The job has `total` units of work (images here).
    fn start(&self, _total: u64) {}
    /// `n` more units are done.
    fn advance(&self, _n: u64) {}
    /// The job is over.
    fn finish(&self) {}
}

/// A [`Progress`] that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Patches of one photograph, before they get their store-wide ids.
pub struct ImagePatches {
    pub id: String,
    /// Rows with `patch` = 0 and `split` unset (filled in by the writer).
    pub rows: Vec<PatchRow>,
    /// `rows.len()` patches of P*P*3 bytes, HWC RGB.
    pub data: Vec<u8>,
}

/// What an extraction produced.
#[derive(Debug)]
pub struct ExtractOutcome {
    pub store: PathBuf,
    pub stats: StoreStats,
}

/// A stable 64-bit seed for one image and purpose, independent of processing order.
pub fn image_seed(seed: u64, id: &str, salt: u64) -> u64 {
    // FNV-1a over the id, then a splitmix64 finaliser with the seed and salt.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h = (h ^ *b as u64).wrapping_mul(0x100_0000_01b3);
    }
    let mut z =
        h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Extracts the patches of one photograph (decode, field of view, positions, labels).
pub fn extract_image(record: &ImageRecord, settings: &ExtractSettings) -> Result<ImagePatches> {
    let sample = load_sample(record)?;
    let (w, h) = sample.rgb.dimensions();
    let p = settings.patch_size;
    let fov = fov_grid(&sample.rgb, &settings.fov);

    // Where the patches go.
    let mut places: Vec<(u32, u32, PatchKind, Option<fovea_data::Lesion>)> = Vec::new();
    if settings.grid {
        places.extend(
            grid_positions(w, h, p, settings.stride)
                .into_iter()
                .map(|(x, y)| (x, y, PatchKind::Grid, None)),
        );
    }
    let lc = &settings.lesion_centred;
    let mut has_lesion = [false; NUM_LESIONS];
    for (l, mask) in LESIONS.iter().zip(&sample.masks) {
        // A lesion without a mask file has an all-zero mask: no need to look.
        has_lesion[l.index()] =
            record.masks[l.index()].is_some() && mask.as_raw().iter().any(|&v| v != 0);
    }
    if lc.per_component > 0 {
        for l in LESIONS {
            if !has_lesion[l.index()] {
                continue;
            }
            let comps = components(&sample.masks[l.index()], lc.min_area);
            let mut rng = ChaCha8Rng::seed_from_u64(image_seed(
                settings.seed,
                &sample.id,
                1 + l.index() as u64,
            ));
            let max_comps =
                (lc.max_per_image.checked_div(lc.per_component).unwrap_or(0)).max(1) as usize;
            let mut chosen: Vec<usize> = if comps.len() > max_comps {
                sample_indices(&mut rng, comps.len(), max_comps).into_vec()
            } else {
                (0..comps.len()).collect()
            };
            chosen.sort_unstable();
            let j = lc.jitter as i64;
            for &c in &chosen {
                let comp = &comps[c];
                for _ in 0..lc.per_component {
                    let shift = if j > 0 {
                        (rng.random_range(-j..=j), rng.random_range(-j..=j))
                    } else {
                        (0, 0)
                    };
                    if let Some((x, y)) = centred_position(w, h, p, comp.bbox, comp.centre, shift) {
                        places.push((x, y, PatchKind::Lesion, Some(l)));
                    }
                }
            }
        }
    }

    // Crop and label.
    let region = settings.label_region();
    let one = (p as usize).pow(2) * 3;
    let mut data: Vec<u8> = Vec::with_capacity(places.len() * one);
    let raw = sample.rgb.as_raw();
    let row_bytes = w as usize * 3;
    let mut rows = Vec::with_capacity(places.len());
    for &(x, y, kind, centred_on) in &places {
        for r in 0..p as usize {
            let src = (y as usize + r) * row_bytes + x as usize * 3;
            data.extend_from_slice(&raw[src..src + p as usize * 3]);
        }
        let (rx, ry, rs) = label_region(x, y, p, region);
        let mut px = [0u32; NUM_LESIONS];
        let mut labels = [0u8; NUM_LESIONS];
        let mut any = false;
        for i in 0..NUM_LESIONS {
            if !has_lesion[i] {
                continue;
            }
            px[i] = count_in_rect(&sample.masks[i], rx, ry, rs, rs) as u32;
            labels[i] = u8::from(px[i] >= settings.label.min_lesion_px);
            any |= px[i] > 0 || (rs < p && count_in_rect(&sample.masks[i], x, y, p, p) > 0);
        }
        let fov_frac = fov.count_in_rect(x, y, p, p) as f32 / (p as f32 * p as f32);
        rows.push(PatchRow {
            patch: 0,
            image_id: sample.id.clone(),
            split: Split::Train,
            x,
            y,
            size: p,
            kind,
            labels,
            px,
            fov_frac,
            black: fov_frac < settings.black.fov_threshold && !any,
            centred_on,
        });
    }
    Ok(ImagePatches {
        id: sample.id,
        rows,
        data,
    })
}

/// The records an extraction covers, with their splits, after the selection settings.
pub fn plan(dataset: &Dataset, settings: &ExtractSettings) -> Result<Vec<(ImageRecord, Split)>> {
    let fixed = match &settings.split.file {
        Some(p) => Some((p.clone(), read_split_file(p)?)),
        None => None,
    };
    let splits = assign_splits(
        &dataset.records,
        &settings.split,
        settings.split_seed(),
        fixed.as_ref().map(|(p, m)| (p.as_path(), m)),
    )?;
    let sel = &settings.select;
    for id in &sel.ids {
        if !dataset.records.iter().any(|r| &r.id == id) {
            return Err(StoreError::setting(
                "select.ids",
                format!("no image '{id}' in {}", dataset.root.display()),
            ));
        }
    }
    let mut out: Vec<(ImageRecord, Split)> = dataset
        .records
        .iter()
        .zip(splits)
        .filter(|(r, s)| {
            (sel.splits.is_empty() || sel.splits.contains(s))
                && (sel.ids.is_empty() || sel.ids.contains(&r.id))
        })
        .map(|(r, s)| (r.clone(), s))
        .collect();
    if sel.limit > 0 {
        out.truncate(sel.limit);
    }
    if out.is_empty() {
        return Err(StoreError::setting("select", "no image selected"));
    }
    Ok(out)
}

fn partial_dir(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    out.with_file_name(format!(".{name}.partial"))
}

/// Extracts `dataset` into a patch store at `out` (CONTRACTS 2).
///
/// `out` must not exist unless `force`; `cancel` is polled between batches of photographs
/// (an interrupted run removes its partial folder and returns [`StoreError::Interrupted`]).
pub fn extract(
    dataset: &Dataset,
    settings: &ExtractSettings,
    out: &Path,
    force: bool,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<ExtractOutcome> {
    settings.validate()?;
    if out.exists() && !force {
        return Err(StoreError::Exists {
            path: out.to_path_buf(),
        });
    }
    let plan = plan(dataset, settings)?;
    let mut resolved = settings.clone();
    resolved.dataset = Some(std::fs::canonicalize(&dataset.root).unwrap_or(dataset.root.clone()));

    let tmp = partial_dir(out);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    let result = write_store(&plan, &resolved, &tmp, progress, cancel);
    let stats = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    // Swap into place.
    if out.exists() {
        let old = out.with_file_name(format!(
            ".{}.old",
            out.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(out, &old).map_err(|e| StoreError::io(out, e))?;
        std::fs::rename(&tmp, out).map_err(|e| StoreError::io(out, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, out).map_err(|e| StoreError::io(out, e))?;
    }
    Ok(ExtractOutcome {
        store: out.to_path_buf(),
        stats,
    })
}

fn write_store(
    plan: &[(ImageRecord, Split)],
    settings: &ExtractSettings,
    dir: &Path,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<StoreStats> {
    let npy_path = dir.join("patches.npy");
    let index_path = dir.join("index.csv");
    let mut npy = NpyPatchWriter::create(&npy_path, settings.patch_size)?;
    let index_file = File::create(&index_path).map_err(|e| StoreError::io(&index_path, e))?;
    let mut index =
        IndexWriter::new(BufWriter::new(index_file)).map_err(|e| StoreError::io(&index_path, e))?;

    let batch = 2 * rayon::current_num_threads().max(1);
    progress.start(plan.len() as u64);
    let (tx, rx) = mpsc::sync_channel::<Vec<(ImagePatches, Split)>>(1);
    let outcome: Result<Vec<PatchRow>> = std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<Vec<PatchRow>> {
            let mut all = Vec::new();
            for chunk in rx {
                for (img, split) in chunk {
                    npy.append(&img.data)?;
                    for mut row in img.rows {
                        row.patch = all.len() as u64;
                        row.split = split;
                        index
                            .write(&row)
                            .map_err(|e| StoreError::io(&index_path, e))?;
                        all.push(row);
                    }
                    progress.advance(1);
                }
            }
            let mut f = index
                .into_inner()
                .into_inner()
                .map_err(|e| StoreError::io(&index_path, e.into_error()))?;
            f.flush().map_err(|e| StoreError::io(&index_path, e))?;
            f.sync_all().map_err(|e| StoreError::io(&index_path, e))?;
            npy.finish()?;
            Ok(all)
        });
        let mut failure = None;
        for chunk in plan.chunks(batch) {
            if cancel.load(Ordering::Relaxed) {
                failure = Some(StoreError::Interrupted);
                break;
            }
            let done: Result<Vec<(ImagePatches, Split)>> = chunk
                .par_iter()
                .map(|(r, s)| extract_image(r, settings).map(|p| (p, *s)))
                .collect();
            match done {
                Ok(v) => {
                    if tx.send(v).is_err() {
                        break; // the writer failed; its error is returned below
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(StoreError::corrupt(dir, "writer thread panicked")));
        match failure {
            Some(e) => Err(e),
            None => written,
        }
    });
    progress.finish();
    let rows = outcome?;
    let stats = StoreStats::from_rows(&rows, plan.len(), settings);
    let stats_path = dir.join("stats.json");
    write_synced(&stats_path, stats.to_json().as_bytes())?;
    let toml_path = dir.join("extract.toml");
    write_synced(&toml_path, settings.to_toml().as_bytes())?;
    Ok(stats)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| StoreError::io(path, e))?;
    f.write_all(bytes).map_err(|e| StoreError::io(path, e))?;
    f.sync_all().map_err(|e| StoreError::io(path, e))
}
