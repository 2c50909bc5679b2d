//! The segmentation tile sampler: hand-checkable geometry, lesion-aware frequencies,
//! determinism, the split, the cache bound, on small photographs built in memory and on
//! the synthetic generator's dataset.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use fovea_data::synth::{generate, SynthSettings};
use fovea_data::{Dataset, Enhance, Sample, Split, NUM_LESIONS};
use fovea_loader::augment::{AugmentSettings, IMAGENET_MEAN, IMAGENET_STD};
use fovea_loader::tiles::{
    store_splits, Category, DatasetSource, MemorySource, SampleSource, TileLoader, TileSampler,
    TileSettings,
};
use fovea_loader::LoaderError;
use image::{GrayImage, Luma, Rgb, RgbImage};

/// A `w` x `h` photograph, red everywhere (inside the field of view), no lesion.
fn blank(id: &str, w: u32, h: u32) -> Sample {
    Sample {
        id: id.into(),
        rgb: RgbImage::from_pixel(w, h, Rgb([150, 80, 40])),
        masks: std::array::from_fn(|_| GrayImage::new(w, h)),
    }
}

fn sampler(samples: Vec<Sample>, settings: TileSettings) -> TileSampler {
    TileSampler::new(Arc::new(MemorySource { samples }), settings).unwrap()
}

/// Settings without colour jitter (so the photograph's bytes can be read back), with
/// flips and quarter turns, no small-angle rotation, field of view per pixel.
fn exact(side: u32) -> TileSettings {
    TileSettings {
        side,
        augment: AugmentSettings {
            rotation_deg: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            hue: 0.0,
            ..AugmentSettings::default()
        },
        fov: fovea_data::FovSettings {
            block: 1,
            ..Default::default()
        },
        workers: 0,
        ..TileSettings::default()
    }
}

/// The byte a normalised value came from.
fn byte(v: f32, c: usize) -> u8 {
    ((v * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255.0).round() as u8
}

fn mask_sum(tile_masks: &[u8], lesion: usize, side: usize) -> usize {
    tile_masks[lesion * side * side..(lesion + 1) * side * side]
        .iter()
        .map(|&v| v as usize)
        .sum()
}

#[test]
fn a_single_lesion_pixel_is_in_every_tile_drawn_for_it() {
    // 16x16, one MA pixel at (3, 12) near the border: windows get shifted into the image.
    let mut s = blank("one", 16, 16);
    s.masks[0].put_pixel(3, 12, Luma([255]));
    let settings = TileSettings {
        lesion_weights: [1.0, 0.0, 0.0, 0.0],
        fov_weight: 0.0,
        ..exact(8)
    };
    let sampler = sampler(vec![s], settings);
    assert_eq!(sampler.probabilities(), [1.0, 0.0, 0.0, 0.0, 0.0]);
    for i in 0..200 {
        let t = sampler.tile(0, i).unwrap();
        assert_eq!(t.info.category, Category::Lesion(fovea_data::Lesion::MA));
        assert_eq!(t.info.point, (3, 12));
        assert_eq!(mask_sum(&t.masks, 0, 8), 1, "tile {i}: {:?}", t.info);
        let g = &t.info.geometry;
        assert!((0..=8).contains(&g.x0) && (0..=8).contains(&g.y0), "{g:?}");
        for l in 1..NUM_LESIONS {
            assert_eq!(mask_sum(&t.masks, l, 8), 0);
        }
        assert!(t.fov.iter().all(|&f| f == 1));
    }
}

#[test]
fn photograph_and_masks_move_together() {
    // Pixel (x, y) has red 16 x, green 16 y: its colour says where it came from. The HE
    // mask is set where (x + 2 y) % 3 == 0, SE where x > y.
    let (w, h) = (16u32, 16u32);
    let mut s = blank("grid", w, h);
    for y in 0..h {
        for x in 0..w {
            s.rgb
                .put_pixel(x, y, Rgb([(16 * x) as u8, (16 * y) as u8, 200]));
            if (x + 2 * y) % 3 == 0 {
                s.masks[1].put_pixel(x, y, Luma([1]));
            }
            if x > y {
                s.masks[3].put_pixel(x, y, Luma([1]));
            }
        }
    }
    let masks = s.masks.clone();
    let sampler = sampler(vec![s], exact(6));
    let mut turned = [0usize; 4];
    let mut flipped = 0;
    for i in 0..64 {
        let t = sampler.tile(3, i).unwrap();
        turned[t.info.geometry.quarter as usize] += 1;
        flipped += t.info.geometry.hflip as usize;
        for k in 0..36 {
            let (x, y) = (byte(t.image[k], 0) / 16, byte(t.image[k + 36], 1) / 16);
            assert_eq!(byte(t.image[k + 72], 2), 200);
            for (l, mask) in masks.iter().enumerate() {
                let want = mask.get_pixel(x as u32, y as u32)[0];
                assert_eq!(t.masks[l * 36 + k], want, "tile {i} pixel {k} lesion {l}");
            }
        }
        // The tile is the window turned: its pixels are the window's, each once.
        let g = t.info.geometry;
        let mut seen: Vec<(u8, u8)> = (0..36)
            .map(|k| (byte(t.image[k], 0) / 16, byte(t.image[k + 36], 1) / 16))
            .collect();
        seen.sort_unstable();
        let mut window: Vec<(u8, u8)> = (0..6)
            .flat_map(|dx| (0..6).map(move |dy| ((g.x0 + dx) as u8, (g.y0 + dy) as u8)))
            .collect();
        window.sort_unstable();
        assert_eq!(seen, window, "{g:?}");
    }
    assert!(turned.iter().all(|&n| n > 5), "{turned:?}");
    assert!((10..54).contains(&flipped), "{flipped}");
}

#[test]
fn small_rotations_keep_a_lesion_and_its_pixels_aligned() {
    // A 3x3 MA blob at the centre of a 32x32 photograph, any angle up to 30 degrees.
    let mut s = blank("blob", 32, 32);
    for y in 15..18 {
        for x in 15..18 {
            s.masks[0].put_pixel(x, y, Luma([1]));
            s.rgb.put_pixel(x, y, Rgb([40, 20, 10]));
        }
    }
    let settings = TileSettings {
        lesion_weights: [1.0, 0.0, 0.0, 0.0],
        fov_weight: 0.0,
        augment: AugmentSettings {
            rotation_deg: 30.0,
            ..exact(12).augment
        },
        ..exact(12)
    };
    let sampler = sampler(vec![s], settings);
    let mut rotated = 0;
    for i in 0..100 {
        let t = sampler.tile(0, i).unwrap();
        rotated += (t.info.geometry.angle_deg != 0.0) as usize;
        assert!(mask_sum(&t.masks, 0, 12) > 0, "tile {i}: {:?}", t.info);
        // Where the mask says lesion the photograph is the blob's dark red, away from its
        // edges at least (bilinear blends the border pixels).
        for k in 0..144 {
            if t.masks[k] == 1 {
                assert!(byte(t.image[k], 0) < 150, "tile {i} pixel {k}");
            }
        }
    }
    assert!(rotated > 90);
}

/// A 128x128 photograph per id with a 13x13 SE blob (1 % of the pixels) in every other
/// photograph, and a few MA, HE, EX pixels in each.
fn rare_se(n: usize) -> Vec<Sample> {
    (0..n)
        .map(|k| {
            let mut s = blank(&format!("img{k}"), 128, 128);
            let o = 20 + (k as u32 * 37) % 90;
            for l in 0..3 {
                s.masks[l].put_pixel(o + l as u32 * 5 % 30, 100 - o / 2, Luma([1]));
            }
            if k % 2 == 0 {
                for y in 0..13 {
                    for x in 0..13 {
                        s.masks[3].put_pixel(o / 2 + x, o / 3 + y, Luma([1]));
                    }
                }
            }
            s
        })
        .collect()
}

fn se_fraction(sampler: &TileSampler, tiles: u64) -> f64 {
    let mut with_se = 0;
    for i in 0..tiles {
        let t = sampler.tile(0, i).unwrap();
        with_se += (mask_sum(&t.masks, 3, sampler.settings().side as usize) > 0) as u64;
    }
    with_se as f64 / tiles as f64
}

#[test]
fn rare_lesions_are_seen_as_often_as_asked() {
    let aware = TileSettings {
        side: 16,
        lesion_weights: [0.25; 4],
        fov_weight: 0.0,
        ..exact(16)
    };
    let s = sampler(rare_se(6), aware.clone());
    let f = se_fraction(&s, 400);
    assert!(f >= 0.20, "lesion-aware: {f}");
    // The same photographs drawn from the field of view alone: SE is rare.
    let uniform = TileSettings {
        lesion_weights: [0.0; 4],
        fov_weight: 1.0,
        ..aware
    };
    let u = se_fraction(&sampler(rare_se(6), uniform), 400);
    assert!(u < 0.12, "field of view only: {u}");
    // Categories come out in proportion (binomial, 400 draws of p = 0.25: sd 0.022).
    let mut counts = [0usize; 4];
    for i in 0..400 {
        if let Category::Lesion(l) = s.tile(1, i).unwrap().info.category {
            counts[l.index()] += 1;
        }
    }
    assert!(counts.iter().all(|&c| (70..130).contains(&c)), "{counts:?}");
}

#[test]
fn same_seed_same_tiles_whatever_the_workers() {
    let base = TileSettings {
        side: 16,
        tiles_per_epoch: 20,
        batch_size: 3,
        ..TileSettings::default()
    };
    let one = Arc::new(sampler(rare_se(4), base.clone()));
    let a: Vec<_> = TileLoader::new(one.clone())
        .epoch(2, 0)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(a.len(), 7);
    assert_eq!(a[6].size, 2);
    let two = Arc::new(sampler(
        rare_se(4),
        TileSettings {
            workers: 3,
            queue: 2,
            ..base.clone()
        },
    ));
    let b: Vec<_> = TileLoader::new(two.clone())
        .epoch(2, 0)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(a, b);
    // Resumed at batch 4: the same batches 4..
    let c: Vec<_> = TileLoader::new(two)
        .epoch(2, 4)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(&a[4..], &c[..]);
    // A tile is tile i of the epoch, batch by batch.
    assert_eq!(
        one.tile(2, 7).unwrap().image,
        a[2].images[16 * 16 * 3..2 * 16 * 16 * 3]
    );
    // Another epoch or seed differs.
    assert_ne!(one.tile(3, 7).unwrap().image, one.tile(2, 7).unwrap().image);
    let other = sampler(rare_se(4), TileSettings { seed: 1, ..base });
    assert_ne!(
        other.tile(2, 7).unwrap().image,
        one.tile(2, 7).unwrap().image
    );
    // Batch layout: [B, 3, S, S] f32, [B, 4, S, S] and [B, 1, S, S] u8 in {0, 1}.
    assert_eq!(a[0].images.len(), 3 * 3 * 256);
    assert_eq!(a[0].masks.len(), 3 * 4 * 256);
    assert_eq!(a[0].fov.len(), 3 * 256);
    assert!(a
        .iter()
        .all(|b| b.masks.iter().chain(&b.fov).all(|&v| v <= 1)));
}

#[test]
fn the_cache_never_exceeds_its_bound() {
    let one_image = 128 * 128 * 4u64; // RGB + packed labels
    let settings = TileSettings {
        cache_bytes: 2 * one_image + one_image / 2,
        group_images: 0,
        ..exact(16)
    };
    let s = sampler(rare_se(6), settings.clone());
    for i in 0..150 {
        s.tile(0, i).unwrap();
        let (used, _) = s.cache_usage();
        assert!(used <= settings.cache_bytes, "{used}");
    }
    let (used, stats) = s.cache_usage();
    assert_eq!(used, 2 * one_image);
    assert!(stats.evictions > 0 && stats.hits > 0, "{stats:?}");
    // A cache that holds everything decodes each photograph once (while indexing).
    let s = sampler(
        rare_se(6),
        TileSettings {
            cache_bytes: 6 * one_image,
            ..settings.clone()
        },
    );
    for i in 0..150 {
        s.tile(0, i).unwrap();
    }
    let (used, stats) = s.cache_usage();
    assert_eq!((used, stats.misses, stats.evictions), (6 * one_image, 6, 0));
    // No cache at all still works.
    let s = sampler(
        rare_se(3),
        TileSettings {
            cache_bytes: 0,
            ..settings
        },
    );
    s.tile(0, 0).unwrap();
    assert_eq!(s.cache_usage().0, 0);
}

#[test]
fn groups_keep_the_draws_local() {
    // With group_images = 2, the 64 tiles of a group come from at most 2 photographs
    // when every photograph holds every lesion drawn (MA here).
    let settings = TileSettings {
        lesion_weights: [1.0, 0.0, 0.0, 0.0],
        fov_weight: 1.0,
        group_images: 2,
        group_tiles: 64,
        ..exact(16)
    };
    let s = sampler(rare_se(8), settings);
    let mut images: Vec<usize> = (0..64).map(|i| s.tile(0, i).unwrap().info.image).collect();
    images.sort_unstable();
    images.dedup();
    assert_eq!(images.len(), 2, "{images:?}");
}

#[test]
fn a_photograph_smaller_than_a_tile_is_an_error() {
    let err = TileSampler::new(
        Arc::new(MemorySource {
            samples: vec![blank("big", 64, 64), blank("tiny", 64, 20)],
        }),
        exact(32),
    )
    .err()
    .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("tiny") && msg.contains("smaller than a tile"),
        "{msg}"
    );
}

#[test]
fn enhancement_and_scale_apply_to_the_photograph() {
    let mut s = blank("e", 64, 64);
    for y in 20..30 {
        for x in 20..30 {
            s.rgb.put_pixel(x, y, Rgb([60, 30, 20]));
            s.masks[1].put_pixel(x, y, Luma([1]));
        }
    }
    let base = TileSettings {
        augment: AugmentSettings::off(),
        ..exact(16)
    };
    let plain = sampler(vec![s.clone()], base.clone()).tile(0, 0).unwrap();
    let lc = TileSettings {
        enhance: Enhance::LocalContrast,
        ..base.clone()
    };
    let enhanced = sampler(vec![s.clone()], lc).tile(0, 0).unwrap();
    assert_eq!(plain.masks, enhanced.masks);
    assert_eq!(plain.info, enhanced.info);
    assert_ne!(plain.image, enhanced.image);
    // Half scale: the 10x10 HE square becomes 5x5.
    let half = TileSettings { scale: 0.5, ..base };
    let s = sampler(vec![s], half);
    assert_eq!(
        (s.lesion_index(0).width, s.lesion_index(0).pixels[1]),
        (32, 25)
    );
}

/// A synthetic dataset and a patch store extracted from it (the split's source).
fn synth_store(root: &std::path::Path) -> (Dataset, fovea_store::Store) {
    let data = root.join("data");
    generate(
        &data,
        &SynthSettings {
            images: 10,
            seed: 3,
            width: 256,
            height: 192,
        },
    )
    .unwrap();
    let dataset = Dataset::open(&data).unwrap();
    let out = root.join("store");
    fovea_store::extract(
        &dataset,
        &fovea_store::ExtractSettings {
            patch_size: 32,
            stride: 32,
            ..Default::default()
        },
        &out,
        false,
        &fovea_store::extract::NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    (dataset, fovea_store::Store::open(&out).unwrap())
}

#[test]
fn the_store_split_is_respected_on_the_synthetic_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let (dataset, store) = synth_store(dir.path());
    let splits = store_splits(&store.rows).unwrap();
    assert_eq!(splits.len(), 10);
    let source = DatasetSource::new(&dataset, &splits, Split::Train).unwrap();
    let train: Vec<String> = (0..source.len())
        .map(|k| source.id(k).to_string())
        .collect();
    assert!(train.iter().all(|id| splits[id] == Split::Train));
    assert_eq!(
        train.len(),
        splits.values().filter(|&&s| s == Split::Train).count()
    );
    let settings = TileSettings {
        side: 64,
        lesion_weights: [0.25; 4],
        fov_weight: 0.0,
        workers: 2,
        ..TileSettings::default()
    };
    let s = TileSampler::new(Arc::new(source), settings).unwrap();
    let mut se = 0;
    for i in 0..200 {
        let t = s.tile(0, i).unwrap();
        let id = s.source().id(t.info.image);
        assert_eq!(splits[id], Split::Train, "tile {i} from {id}");
        se += (mask_sum(&t.masks, 3, 64) > 0) as usize;
    }
    // SE lies in about half of the synthetic photographs; drawn a quarter of the time.
    assert!(se >= 40, "{se} of 200 tiles hold SE");
    // A split map that does not match the dataset is refused.
    let mut missing: HashMap<String, Split> = splits.clone();
    missing.remove("SYN_0003");
    let err = DatasetSource::new(&dataset, &missing, Split::Train).unwrap_err();
    assert!(err.to_string().contains("SYN_0003"), "{err}");
    let mut extra = splits;
    extra.insert("OTHER_1".into(), Split::Test);
    assert!(matches!(
        DatasetSource::new(&dataset, &extra, Split::Train),
        Err(LoaderError::SplitMap { .. })
    ));
}

/// Every image of `dataset` in `split`.
fn all_in(dataset: &Dataset, split: Split) -> HashMap<String, Split> {
    dataset
        .records
        .iter()
        .map(|r| (r.id.clone(), split))
        .collect()
}

#[test]
fn a_mask_of_another_size_than_its_photograph_is_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(
        &data,
        &SynthSettings {
            images: 3,
            seed: 5,
            width: 96,
            height: 64,
        },
    )
    .unwrap();
    let dataset = Dataset::open(&data).unwrap();
    // The second photograph's first annotated mask, replaced by one 2 pixels narrower.
    let record = &dataset.records[1];
    let mask = record.masks.iter().flatten().next().unwrap().clone();
    GrayImage::new(94, 64).save(&mask).unwrap();
    let source =
        DatasetSource::new(&dataset, &all_in(&dataset, Split::Train), Split::Train).unwrap();
    let settings = TileSettings {
        side: 32,
        workers: 2,
        ..TileSettings::default()
    };
    let err = TileSampler::new(Arc::new(source), settings).err().unwrap();
    assert!(matches!(&err, LoaderError::Data(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&mask.display().to_string())
            && msg.contains(&record.image.display().to_string())
            && msg.contains("94x64")
            && msg.contains("96x64"),
        "{msg}"
    );
}

#[test]
fn a_photograph_smaller_than_a_tile_at_the_tile_scale_is_an_error() {
    // 64x64 is a tile of 32 at full resolution, 16x16 at scale 0.25: refused, naming the
    // photograph, its size at that scale and the scale (never padded).
    let samples = vec![blank("big", 256, 256), blank("small", 64, 64)];
    assert!(TileSampler::new(
        Arc::new(MemorySource {
            samples: samples.clone()
        }),
        exact(32)
    )
    .is_ok());
    let quarter = TileSettings {
        scale: 0.25,
        ..exact(32)
    };
    let msg = TileSampler::new(Arc::new(MemorySource { samples }), quarter)
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("'small'") && msg.contains("16x16 at scale 0.25"),
        "{msg}"
    );
}
