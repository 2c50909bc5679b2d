//! Training tiles for a pixel-level lesion segmentation model, cut from the photographs
//! and their four lesion masks (not from the 64-pixel patch store), with lesion-aware
//! probability, augmented photograph and masks together, seeded, in bounded memory.
//!
//! The segmentation training (`fovea_nn::segmentation`, `fovea train --task
//! segmentation`) draws its batches from here.
//!
//! One draw (tile `i` of epoch `e`, every random choice from the stream
//! (seed, `TILES`, e, i), so a tile depends on nothing else):
//! 1. a category, MA, HE, EX, SE or FOV, with the probabilities
//!    [`TileSettings::probabilities`] (a lesion no photograph of the split holds is never
//!    drawn), so that the rare SE and the tiny MA are seen as often as asked;
//! 2. a photograph: among those holding that lesion (any photograph for FOV), preferring
//!    the `group_images` photographs of the tile's group (see [`TileSettings`]);
//! 3. augmentation: flips, small-angle rotation, colour jitter ([`AugmentParams::sample`]),
//!    then a quarter turn (0-3) when `rot90`;
//! 4. where: for a lesion, one of its pixels (from the photograph's [`LesionIndex`]) placed
//!    at a random position in the central half of the tile, so that any rotation about the
//!    tile's centre keeps it in the tile; for FOV, a random field-of-view pixel (rejection
//!    sampling, at most 64 tries, else the photograph's centre) at the tile's centre. The
//!    window is then shifted into the photograph when it sticks out (which may push a
//!    lesion pixel out of the central half: a rotated tile may then lose it; an unrotated
//!    or quarter-turned one never does).
//!
//! Output per tile: the photograph `[3, S, S]` f32, ImageNet-normalised like the patch
//! loader's (colour jitter on the photograph only), the masks `[4, S, S]` u8 in {0, 1}
//! (MA, HE, EX, SE) and the field of view `[S, S]` u8 in {0, 1}, all through the same
//! geometry ([`warp`]), labels by nearest neighbour.
//!
//! Memory: every photograph is decoded once when the sampler is built, to index its lesion
//! pixels (at most `4 * max_points` points of 4 bytes each are kept per photograph);
//! decoded photographs are then kept in a [`cache::ByteLru`] of `cache_bytes`, so the
//! resident memory is about `cache_bytes` + one photograph per worker + the indexes,
//! whatever the number of photographs.
//!
//! Bad input, found when the sampler is built (every photograph is decoded then): a mask
//! whose size differs from its photograph's is fovea-data's error naming both files and
//! both sizes; a photograph smaller than a tile at the tile scale is refused, naming it,
//! its size at that scale and the scale. It is not padded: a padded tile would teach the
//! model a border that no real photograph has, and a fundus photograph that small is a
//! wrong file or a wrong `scale`, which the user should hear about.

pub mod batches;
pub mod cache;
pub mod prepare;
pub mod settings;
pub mod source;
pub mod warp;

use std::sync::{Arc, Mutex};

use fovea_data::{Lesion, LESIONS, NUM_LESIONS};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::augment::{colour_normalise, AugmentParams};
use crate::error::{LoaderError, Result};
use crate::rng::stream;

pub use batches::{TileBatch, TileBatches, TileLoader};
pub use cache::{ByteLru, CacheStats};
pub use prepare::{LesionIndex, Prepared, FOV_BIT};
pub use settings::TileSettings;
pub use source::{store_splits, DatasetSource, MemorySource, SampleSource};
pub use warp::Geometry;

/// Purpose tag of the per-tile streams.
pub const TILES: u64 = 0x0074_696c_6573; // "tiles"
/// Purpose tag of the per-group streams (which photographs a group prefers).
pub const GROUPS: u64 = 0x0067_726f_7570; // "group"
/// Field-of-view pixel tries of a FOV draw.
const FOV_TRIES: usize = 64;

/// What a tile was drawn around.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Lesion(Lesion),
    Fov,
}

/// How a tile was made.
#[derive(Clone, Debug, PartialEq)]
pub struct TileInfo {
    /// Position of the photograph in the source.
    pub image: usize,
    pub category: Category,
    /// The pixel drawn (a lesion pixel, or a field-of-view pixel), photograph coordinates
    /// at the tile scale.
    pub point: (u32, u32),
    pub geometry: Geometry,
    pub augment: AugmentParams,
}

/// One tile (see the module doc for the layouts).
#[derive(Clone, Debug, PartialEq)]
pub struct Tile {
    /// `[3, S, S]`, ImageNet-normalised RGB.
    pub image: Vec<f32>,
    /// `[4, S, S]`, 0/1, MA, HE, EX, SE.
    pub masks: Vec<u8>,
    /// `[S, S]`, 1 inside the field of view.
    pub fov: Vec<u8>,
    pub info: TileInfo,
}

/// Draws tiles from the photographs of one split.
pub struct TileSampler {
    source: Arc<dyn SampleSource>,
    settings: TileSettings,
    index: Vec<LesionIndex>,
    /// Photographs holding each lesion.
    with_lesion: [Vec<usize>; NUM_LESIONS],
    probabilities: [f64; NUM_LESIONS + 1],
    cache: Mutex<ByteLru<usize, Prepared>>,
}

impl TileSampler {
    /// Decodes and indexes every photograph of `source` (on up to `workers` threads,
    /// filling the cache on the way). A photograph smaller than a tile at the tile scale is
    /// an error naming it, as is a split where nothing can be drawn.
    pub fn new(source: Arc<dyn SampleSource>, settings: TileSettings) -> Result<TileSampler> {
        settings.validate()?;
        if source.is_empty() {
            return Err(LoaderError::SplitMap {
                reason: "no photograph to draw tiles from".into(),
            });
        }
        let cache = Mutex::new(ByteLru::new(settings.cache_bytes));
        let mut sampler = TileSampler {
            source,
            settings,
            index: Vec::new(),
            with_lesion: Default::default(),
            probabilities: [0.0; NUM_LESIONS + 1],
            cache,
        };
        sampler.index = sampler.build_index()?;
        for (k, idx) in sampler.index.iter().enumerate() {
            for l in 0..NUM_LESIONS {
                if !idx.points[l].is_empty() {
                    sampler.with_lesion[l].push(k);
                }
            }
        }
        let present = std::array::from_fn(|l| !sampler.with_lesion[l].is_empty());
        sampler.probabilities =
            sampler
                .settings
                .probabilities(present)
                .ok_or_else(|| LoaderError::SplitMap {
                    reason: "no photograph of the split holds a lesion whose weight is above 0, \
                             and fov_weight is 0: nothing to draw"
                        .into(),
                })?;
        Ok(sampler)
    }

    /// Indexes every photograph, `workers` at a time (photographs in order).
    fn build_index(&self) -> Result<Vec<LesionIndex>> {
        let n = self.source.len();
        let threads = self.settings.workers.clamp(1, n);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<LesionIndex>>>> =
            Mutex::new((0..n).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if k >= n {
                        return;
                    }
                    let r = self
                        .load(k)
                        .and_then(|img| self.check_size(&img).map(|_| img));
                    let r = r.map(|img| LesionIndex::new(&img, self.settings.max_points));
                    results.lock().expect("index lock")[k] = Some(r);
                });
            }
        });
        let results = results.into_inner().expect("index lock");
        results
            .into_iter()
            .map(|r| r.expect("every photograph indexed"))
            .collect()
    }

    fn check_size(&self, img: &Prepared) -> Result<()> {
        let s = self.settings.side;
        if img.width < s || img.height < s {
            return Err(LoaderError::Image {
                image: img.id.clone(),
                reason: format!(
                    "{}x{} at scale {} is smaller than a tile of {s}x{s}",
                    img.width, img.height, self.settings.scale
                ),
            });
        }
        Ok(())
    }

    /// Photograph `k`, prepared, from the cache or decoded (and then cached).
    pub fn load(&self, k: usize) -> Result<Arc<Prepared>> {
        if let Some(img) = self.cache.lock().expect("cache lock").get(&k) {
            return Ok(img);
        }
        // Decoded outside the lock: two workers may decode the same photograph at once.
        let img = Arc::new(prepare::prepare(self.source.load(k)?, &self.settings));
        self.cache
            .lock()
            .expect("cache lock")
            .insert(k, img.clone());
        Ok(img)
    }

    pub fn settings(&self) -> &TileSettings {
        &self.settings
    }

    pub fn source(&self) -> &Arc<dyn SampleSource> {
        &self.source
    }

    /// `[MA, HE, EX, SE, FOV]` draw probabilities in use.
    pub fn probabilities(&self) -> [f64; NUM_LESIONS + 1] {
        self.probabilities
    }

    /// The lesion index of photograph `k`.
    pub fn lesion_index(&self, k: usize) -> &LesionIndex {
        &self.index[k]
    }

    /// Bytes held by the cache now, and its counters.
    pub fn cache_usage(&self) -> (u64, CacheStats) {
        let c = self.cache.lock().expect("cache lock");
        (c.used(), c.stats())
    }

    /// Tile `index` of epoch `epoch`.
    pub fn tile(&self, epoch: u64, index: u64) -> Result<Tile> {
        let s = self.settings.side as usize;
        let mut tile = Tile {
            image: vec![0.0; 3 * s * s],
            masks: vec![0; NUM_LESIONS * s * s],
            fov: vec![0; s * s],
            info: TileInfo {
                image: 0,
                category: Category::Fov,
                point: (0, 0),
                geometry: Geometry {
                    x0: 0,
                    y0: 0,
                    side: s,
                    hflip: false,
                    vflip: false,
                    quarter: 0,
                    angle_deg: 0.0,
                },
                augment: AugmentParams::IDENTITY,
            },
        };
        tile.info = self.tile_into(
            epoch,
            index,
            &mut tile.image,
            &mut tile.masks,
            &mut tile.fov,
        )?;
        Ok(tile)
    }

    /// Tile `index` of epoch `epoch` written into `image` (`[3, S, S]`), `masks`
    /// (`[4, S, S]`) and `fov` (`[S, S]`).
    pub fn tile_into(
        &self,
        epoch: u64,
        index: u64,
        image: &mut [f32],
        masks: &mut [u8],
        fov: &mut [u8],
    ) -> Result<TileInfo> {
        let s = self.settings.side as usize;
        let mut rng = stream(self.settings.seed, TILES, epoch, index);
        let category = self.draw_category(&mut rng);
        let k = self.draw_image(&mut rng, category, epoch, index);
        let augment = AugmentParams::sample(&mut rng, &self.settings.augment);
        let quarter = if self.settings.rot90 && self.settings.augment.enabled {
            rng.random_range(0..4u8)
        } else {
            0
        };
        let img = self.load(k)?;
        let (point, offset) = match category {
            Category::Lesion(l) => {
                let pts = &self.index[k].points[l.index()];
                let (x, y) = pts[rng.random_range(0..pts.len())];
                let quarter_side = s / 4;
                let ox = quarter_side + rng.random_range(0..(s / 2).max(1));
                let oy = quarter_side + rng.random_range(0..(s / 2).max(1));
                ((x as u32, y as u32), (ox, oy))
            }
            Category::Fov => (fov_pixel(&img, &mut rng), (s / 2, s / 2)),
        };
        let clamp = |p: u32, o: usize, n: u32| (p as i64 - o as i64).clamp(0, n as i64 - s as i64);
        let geometry = Geometry {
            x0: clamp(point.0, offset.0, img.width),
            y0: clamp(point.1, offset.1, img.height),
            side: s,
            hflip: augment.hflip,
            vflip: augment.vflip,
            quarter,
            angle_deg: augment.angle_deg,
        };
        let mut labels = vec![0u8; s * s];
        warp::cut(&img, &geometry, image, &mut labels);
        colour_normalise(image, s, &augment);
        for (l, plane) in masks.chunks_exact_mut(s * s).enumerate() {
            for (m, &v) in plane.iter_mut().zip(&labels) {
                *m = (v >> l) & 1;
            }
        }
        for (f, &v) in fov.iter_mut().zip(&labels) {
            *f = (v & FOV_BIT != 0) as u8;
        }
        Ok(TileInfo {
            image: k,
            category,
            point,
            geometry,
            augment,
        })
    }

    fn draw_category(&self, rng: &mut ChaCha8Rng) -> Category {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        for (l, &p) in LESIONS.iter().zip(&self.probabilities) {
            acc += p;
            if p > 0.0 && u < acc {
                return Category::Lesion(*l);
            }
        }
        if self.probabilities[NUM_LESIONS] > 0.0 {
            return Category::Fov;
        }
        // Rounding left u above the last lesion's bound: the last lesion drawn.
        let last = (0..NUM_LESIONS)
            .rev()
            .find(|&l| self.probabilities[l] > 0.0);
        Category::Lesion(LESIONS[last.expect("a probability above 0")])
    }

    /// A photograph for `category`: among the tile's group's photographs that hold it when
    /// there are some, else among all that hold it.
    fn draw_image(
        &self,
        rng: &mut ChaCha8Rng,
        category: Category,
        epoch: u64,
        index: u64,
    ) -> usize {
        let n = self.source.len();
        let (m, gt) = (self.settings.group_images, self.settings.group_tiles as u64);
        let group: Vec<usize> = if m == 0 || m >= n {
            Vec::new()
        } else {
            let mut grng = stream(self.settings.seed, GROUPS, epoch, index / gt);
            let mut g = rand::seq::index::sample(&mut grng, n, m).into_vec();
            g.sort_unstable();
            g
        };
        let all: Vec<usize>;
        let candidates: &[usize] = match category {
            Category::Lesion(l) => &self.with_lesion[l.index()],
            Category::Fov => {
                all = (0..n).collect();
                &all
            }
        };
        let preferred: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|k| group.binary_search(k).is_ok())
            .collect();
        let pool = if preferred.is_empty() {
            candidates
        } else {
            &preferred
        };
        pool[rng.random_range(0..pool.len())]
    }
}

/// A random field-of-view pixel of `img` (the centre when 64 tries find none).
fn fov_pixel(img: &Prepared, rng: &mut ChaCha8Rng) -> (u32, u32) {
    for _ in 0..FOV_TRIES {
        let (x, y) = (
            rng.random_range(0..img.width),
            rng.random_range(0..img.height),
        );
        if img.labels[y as usize * img.width as usize + x as usize] & FOV_BIT != 0 {
            return (x, y);
        }
    }
    (img.width / 2, img.height / 2)
}
