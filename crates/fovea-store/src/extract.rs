//! Patch extraction: from a dataset to a patch store (CONTRACTS 2).
//!
//! Photographs are processed in parallel (as many workers as rayon's pool has threads),
//! taken in order and never more than a few ahead of the writer, so memory holds only a few
//! decoded photographs at a time whatever the dataset's size, while the writer appends each
//! to `patches.npy` and `index.csv` in image order.
//! Everything is written into a `.NAME.partial` folder beside the target and renamed into
//! place at the end: an interrupted run never leaves a store that looks whole, and the next
//! run removes the partial folder and starts again.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Condvar, Mutex};

use fovea_data::{
    fov_grid, load_sample, Dataset, ImageRecord, MaskBlocks, Split, LESIONS, NUM_LESIONS,
};
use image::RgbImage;
use rand::seq::index::sample as sample_indices;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::components::components;
use crate::error::{Result, StoreError};
use crate::geometry::{centred_position, grid_positions, label_region};
use crate::index::{IndexWriter, PatchKind, PatchRow};
use crate::npy::NpyPatchWriter;
use crate::output::{prepare_output, OutputKind};
use crate::settings::ExtractSettings;
use crate::split::{assign_splits, keep_identical_together, read_split_file};
use crate::stats::StoreStats;

/// Cell side of the lesion-pixel counts (a divisor of the usual patch sizes and strides, so
/// grid patches cover whole cells).
const MASK_BLOCK: u32 = 16;

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
    /// The decoded photograph the patches are cropped from (by the store's writer, straight
    /// into its output buffer: no intermediate copy).
    pub rgb: RgbImage,
}

impl ImagePatches {
    /// Top-left corners of the patches, in row order.
    pub fn corners(&self) -> Vec<(u32, u32)> {
        self.rows.iter().map(|r| (r.x, r.y)).collect()
    }

    /// The patches' bytes, `rows.len()` patches of P*P*3 bytes, HWC RGB.
    pub fn data(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let raw = self.rgb.as_raw();
        let row_bytes = self.rgb.width() as usize * 3;
        for r in &self.rows {
            let p = r.size as usize;
            for k in 0..p {
                let src = (r.y as usize + k) * row_bytes + r.x as usize * 3;
                out.extend_from_slice(&raw[src..src + p * 3]);
            }
        }
        out
    }
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
    if w < p || h < p {
        // No patch fits: the photograph and its lesions would vanish from the store.
        return Err(StoreError::Unusable {
            path: record.image.clone(),
            reason: format!(
                "photograph '{}' is {w}x{h}, smaller than the {p}x{p} patch: it would give no \
                 patch and its lesions would be lost; remove it from the dataset or lower \
                 --patch-size",
                record.id
            ),
        });
    }
    let fov = fov_grid(&sample.rgb, &settings.fov);
    let rgb = match settings.enhance {
        fovea_data::Enhance::None => sample.rgb,
        e => e.apply(&sample.rgb, &fov),
    };

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
    // Lesion pixels per 16 x 16 cell, for counting them in every patch; a lesion without a
    // mask file has an all-zero mask: no need to look.
    let blocks: Vec<Option<MaskBlocks>> = LESIONS
        .iter()
        .zip(&sample.masks)
        .map(|(l, mask)| {
            record.masks[l.index()]
                .is_some()
                .then(|| MaskBlocks::new(mask, MASK_BLOCK))
                .filter(|b| b.total() > 0)
        })
        .collect();
    let mut has_lesion = [false; NUM_LESIONS];
    for (h, b) in has_lesion.iter_mut().zip(&blocks) {
        *h = b.is_some();
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

    // Label (the writer crops).
    let region = settings.label_region();
    let mut rows = Vec::with_capacity(places.len());
    for &(x, y, kind, centred_on) in &places {
        let (rx, ry, rs) = label_region(x, y, p, region);
        let mut px = [0u32; NUM_LESIONS];
        let mut labels = [0u8; NUM_LESIONS];
        let mut any = false;
        for (i, b) in blocks.iter().enumerate() {
            let Some(b) = b else { continue };
            px[i] = b.count_in_rect(rx, ry, rs, rs) as u32;
            labels[i] = u8::from(px[i] >= settings.label.min_lesion_px);
            any |= px[i] > 0 || (rs < p && b.count_in_rect(x, y, p, p) > 0);
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
    drop(blocks);
    Ok(ImagePatches {
        id: sample.id,
        rows,
        rgb,
    })
}

/// The records an extraction covers, with their splits, after the selection settings.
pub fn plan(dataset: &Dataset, settings: &ExtractSettings) -> Result<Vec<(ImageRecord, Split)>> {
    let fixed = match &settings.split.file {
        Some(p) => Some((p.clone(), read_split_file(p)?)),
        None => None,
    };
    let mut splits = assign_splits(
        &dataset.records,
        &settings.split,
        settings.split_seed(),
        fixed.as_ref().map(|(p, m)| (p.as_path(), m)),
    )?;
    keep_identical_together(&dataset.records, &mut splits)?;
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
/// `out` must not exist unless `force`, and then only as a Fovea patch store; it may not be,
/// contain or lie inside the dataset (see [`crate::output`]). `cancel` is polled between batches of photographs
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
    let mut inputs: Vec<&Path> = vec![&dataset.root];
    inputs.extend(settings.split.file.as_deref());
    prepare_output(out, OutputKind::Store, force, &inputs)?;
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

    let workers = rayon::current_num_threads().max(1);
    progress.start(plan.len() as u64);
    let pipe = Pipeline::new(workers + 2);
    let (tx, rx) = mpsc::sync_channel::<(usize, Result<ImagePatches>)>(workers + 2);
    let outcome: Result<Vec<PatchRow>> = std::thread::scope(|scope| {
        // Workers take photographs in order, at most `workers + 2` ahead of the writer, so
        // memory holds a few photographs whatever the dataset's size, and the writer is fed
        // one photograph at a time (not in batches that wait for their slowest member).
        for _ in 0..workers {
            let tx = tx.clone();
            let pipe = &pipe;
            scope.spawn(move || {
                while let Some(i) = pipe.take(plan.len(), cancel) {
                    let (record, _) = &plan[i];
                    if tx.send((i, extract_image(record, settings))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let written = (|| -> Result<Vec<PatchRow>> {
            let mut all = Vec::new();
            let mut early: std::collections::BTreeMap<usize, Result<ImagePatches>> =
                Default::default();
            let mut next = 0usize;
            while next < plan.len() {
                let img = match early.remove(&next) {
                    Some(r) => r,
                    None => match rx.recv() {
                        Ok((i, r)) if i == next => r,
                        Ok((i, r)) => {
                            early.insert(i, r);
                            continue;
                        }
                        // Every worker stopped: cancelled.
                        Err(_) => return Err(StoreError::Interrupted),
                    },
                }?;
                let split = plan[next].1;
                npy.append_crops(img.rgb.as_raw(), img.rgb.width(), &img.corners())?;
                for mut row in img.rows {
                    row.patch = all.len() as u64;
                    row.split = split;
                    index
                        .write(&row)
                        .map_err(|e| StoreError::io(&index_path, e))?;
                    all.push(row);
                }
                next += 1;
                pipe.written(next);
                progress.advance(1);
            }
            let mut f = index
                .into_inner()
                .map_err(|e| StoreError::io(&index_path, e))?
                .into_inner()
                .map_err(|e| StoreError::io(&index_path, e.into_error()))?;
            f.flush().map_err(|e| StoreError::io(&index_path, e))?;
            f.sync_all().map_err(|e| StoreError::io(&index_path, e))?;
            npy.finish()?;
            Ok(all)
        })();
        // Whatever happened, release the workers (they stop at their next photograph).
        pipe.stop();
        drop(rx);
        written
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

/// Hands out photograph numbers in order to the extraction workers, never more than
/// `ahead` past the last one written.
struct Pipeline {
    ahead: usize,
    state: Mutex<PipeState>,
    moved: Condvar,
}

struct PipeState {
    next: usize,
    written: usize,
    stopped: bool,
}

impl Pipeline {
    fn new(ahead: usize) -> Self {
        Pipeline {
            ahead,
            state: Mutex::new(PipeState {
                next: 0,
                written: 0,
                stopped: false,
            }),
            moved: Condvar::new(),
        }
    }

    /// The next photograph to extract, waiting while the writer is `ahead` behind; `None`
    /// when all are taken, the run is cancelled or the writer stopped.
    fn take(&self, total: usize, cancel: &AtomicBool) -> Option<usize> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if st.stopped || st.next >= total || cancel.load(Ordering::Relaxed) {
                return None;
            }
            if st.next < st.written + self.ahead {
                st.next += 1;
                return Some(st.next - 1);
            }
            // Woken by the writer; the timeout only bounds how late a cancel is seen.
            st = self
                .moved
                .wait_timeout(st, std::time::Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn written(&self, n: usize) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).written = n;
        self.moved.notify_all();
    }

    fn stop(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stopped = true;
        self.moved.notify_all();
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| StoreError::io(path, e))?;
    f.write_all(bytes).map_err(|e| StoreError::io(path, e))?;
    f.sync_all().map_err(|e| StoreError::io(path, e))
}
