//! The global encoder and its per-photograph features.
//!
//! The encoder is a ResNet-18 trunk or Swin-T ([`crate::models::swin`]); both reduce the
//! input 32-fold, so an input of S pixels gives (S/32)^2 tokens (512 or 768 values each).
//!
//! A photograph is cropped to the square around its field of view (the bounding box of
//! the retina, widened to a square centred on it, black where the square passes the
//! photograph's edge), downscaled to `input_size` x `input_size` and normalised as the
//! patches are. A ResNet-18 trunk turns it into a feature map of `(input_size/32)^2`
//! tokens of 512 values and their average, the pooled vector. Tokens whose cell holds no
//! retina are masked out of attention.
//!
//! A patch's position is its centre in that square frame, in `[0, 1]^2`: the same frame
//! as the tokens' positions, so position embeddings of patches and tokens agree.
//!
//! With a frozen encoder the features of each photograph are cached in
//! `CACHE/<key>/<image_id>.safetensors`, `key` a hash of the encoder's architecture, input
//! settings, field-of-view settings and every weight; a cache entry that cannot be read or
//! has the wrong shapes is recomputed (and rewritten) rather than trusted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fovea_data::fov::{fov_grid, FovSettings};
use fovea_store::PatchRow;
use image::RgbImage;
use tch::{nn, Device, Kind, Tensor};

use super::attention::grid_positions;
use super::encoder::{global_input, token_mask, BatchContext, Frame};
use super::model::FoveaModel;
use crate::error::{NnError, Result};
use crate::tensors::read_tensors;
/// Global features of a set of photographs (a store's, or one photograph for maps).
pub struct GlobalContext {
    pub index: HashMap<String, usize>,
    pub frames: Vec<Frame>,
    /// Frozen encoder: `[N, G]`, `[N, T, G]` (on the training device).
    pub pooled: Option<Tensor>,
    pub tokens: Option<Tensor>,
    /// `[N, T]` bool.
    pub mask: Tensor,
    /// Trainable encoder: the encoder inputs `[N, 3, S, S]` (CPU), encoded per batch.
    pub inputs: Option<Tensor>,
    /// Tokens per side.
    pub grid: i64,
    pub token_pos: Tensor,
    /// Photographs read from the cache and computed.
    pub cached: usize,
    pub computed: usize,
}

/// The cache key of an encoder and its input settings.
pub fn cache_key(model: &FoveaModel, vs: &nn::VarStore, fov: &FovSettings) -> String {
    let mut h = fovea_data::hash::ContentHash::new();
    h.str(model.spec.encoder.as_str())
        .u64(model.spec.input_size as u64)
        .f32(fov.red_threshold)
        .u64(fov.block as u64);
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(n, _)| n.starts_with("global.") && !n.starts_with("global.fc."))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in vars {
        h.str(&name);
        let flat = t
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .contiguous()
            .view([-1]);
        if let Ok(v) = Vec::<f32>::try_from(&flat) {
            h.f32s(&v);
        }
    }
    format!(
        "{}-{}-{}",
        model.spec.encoder.as_str(),
        model.spec.input_size,
        h.hex(16)
    )
}

/// One photograph's features: pooled `[G]`, tokens `[T, G]`, mask `[T]`, frame.
struct Entry {
    pooled: Tensor,
    tokens: Tensor,
    mask: Tensor,
    frame: Frame,
}

fn read_entry(path: &Path, t: i64, g: i64) -> Result<Entry> {
    let named = read_tensors(path)?;
    let get = |k: &str, shape: &[i64]| -> Result<Tensor> {
        let v = named
            .get(k)
            .ok_or_else(|| NnError::malformed(path, format!("no tensor '{k}'")))?;
        if v.size() != shape {
            return Err(NnError::malformed(
                path,
                format!("'{k}' has shape {:?}, expected {shape:?}", v.size()),
            ));
        }
        Ok(v.shallow_clone())
    };
    let frame = get("frame", &[3])?;
    let f: Vec<f32> = Vec::try_from(&frame.to_kind(Kind::Float))?;
    let pooled = get("pooled", &[g])?;
    let tokens = get("tokens", &[t, g])?;
    let finite = pooled.isfinite().all().int64_value(&[]) == 1
        && tokens.isfinite().all().int64_value(&[]) == 1;
    if !finite || !f.iter().all(|v| v.is_finite()) || f[2] <= 0.0 {
        return Err(NnError::malformed(path, "non-finite values"));
    }
    Ok(Entry {
        pooled,
        tokens,
        mask: get("mask", &[t])?.to_kind(Kind::Bool),
        frame: Frame {
            x0: f[0],
            y0: f[1],
            side: f[2],
        },
    })
}

fn write_entry(path: &Path, e: &Entry) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|err| NnError::io(dir, err))?;
    let frame = Tensor::from_slice(&[e.frame.x0, e.frame.y0, e.frame.side]);
    let mask = e.mask.to_kind(Kind::Uint8);
    fovea_data::fsio::write_atomic_via(path, |tmp| {
        Tensor::write_safetensors(
            &[
                ("pooled", &e.pooled),
                ("tokens", &e.tokens),
                ("mask", &mask),
                ("frame", &frame),
            ],
            tmp,
        )
        .map_err(|source| NnError::TensorIo {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Decodes a photograph and prepares what the encoder needs from it.
fn prepare(
    image: &Path,
    size: u32,
    fov_settings: &FovSettings,
    grid: i64,
) -> Result<(Vec<f32>, Vec<bool>, Frame)> {
    let rgb = fovea_data::io::read_rgb(image)?;
    Ok(prepare_rgb(&rgb, size, fov_settings, grid))
}

fn prepare_rgb(
    rgb: &RgbImage,
    size: u32,
    fov_settings: &FovSettings,
    grid: i64,
) -> (Vec<f32>, Vec<bool>, Frame) {
    let fov = fov_grid(rgb, fov_settings);
    let frame = Frame::of_fov(&fov);
    (
        global_input(rgb, &frame, size),
        token_mask(&fov, &frame, grid),
        frame,
    )
}

impl GlobalContext {
    /// Global features of `images` (id, photograph path): from the cache when the encoder
    /// is frozen and an entry is there, else computed (and cached). `progress` gets (done,
    /// total).
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        model: &FoveaModel,
        vs: &nn::VarStore,
        images: &[(String, PathBuf)],
        frozen: bool,
        cache: Option<&Path>,
        device: Device,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<GlobalContext> {
        let enc = model
            .encoder
            .as_ref()
            .ok_or_else(|| NnError::internal("this model has no global encoder"))?;
        let size = model.spec.input_size;
        let grid = (size / 32) as i64;
        let (t, g) = (grid * grid, enc.dim());
        let fov_settings = FovSettings::default();
        let dir = cache.map(|c| c.join(cache_key(model, vs, &fov_settings)));
        let mut entries = Vec::with_capacity(images.len());
        let mut inputs = Vec::new();
        let (mut cached, mut computed) = (0, 0);
        for (k, (id, path)) in images.iter().enumerate() {
            progress(k, images.len());
            let file = dir.as_ref().map(|d| d.join(format!("{id}.safetensors")));
            if frozen {
                if let Some(f) = file.as_ref().filter(|f| f.exists()) {
                    match read_entry(f, t, g) {
                        Ok(e) => {
                            entries.push(e);
                            cached += 1;
                            continue;
                        }
                        Err(e) => tracing::warn!("recomputing a bad cache entry: {e}"),
                    }
                }
            }
            if path.as_os_str().is_empty() {
                return Err(NnError::MissingFeatures {
                    id: id.clone(),
                    cache: dir.clone(),
                });
            }
            let (x, mask, frame) = prepare(path, size, &fov_settings, grid)?;
            let xt = Tensor::from_slice(&x).view([1, 3, size as i64, size as i64]);
            let mask = Tensor::from_slice(&mask);
            if frozen {
                let (pooled, tokens) = tch::no_grad(|| enc.encode(&xt.to_device(device), false));
                let e = Entry {
                    pooled: pooled.squeeze_dim(0).to_device(Device::Cpu),
                    tokens: tokens.squeeze_dim(0).to_device(Device::Cpu),
                    mask,
                    frame,
                };
                if let Some(f) = &file {
                    write_entry(f, &e)?;
                }
                entries.push(e);
            } else {
                inputs.push(xt);
                entries.push(Entry {
                    pooled: Tensor::zeros([g], (Kind::Float, Device::Cpu)),
                    tokens: Tensor::zeros([0], (Kind::Float, Device::Cpu)),
                    mask,
                    frame,
                });
            }
            computed += 1;
        }
        progress(images.len(), images.len());
        let stack = |f: &dyn Fn(&Entry) -> Tensor| {
            Tensor::stack(&entries.iter().map(f).collect::<Vec<_>>(), 0)
        };
        let mask = stack(&|e| e.mask.shallow_clone()).to_device(device);
        let (pooled, tokens, inputs) = if frozen {
            (
                Some(stack(&|e| e.pooled.shallow_clone()).to_device(device)),
                Some(stack(&|e| e.tokens.shallow_clone()).to_device(device)),
                None,
            )
        } else {
            (None, None, Some(Tensor::cat(&inputs, 0)))
        };
        Ok(GlobalContext {
            index: images
                .iter()
                .enumerate()
                .map(|(i, (id, _))| (id.clone(), i))
                .collect(),
            frames: entries.iter().map(|e| e.frame).collect(),
            pooled,
            tokens,
            mask,
            inputs,
            grid,
            token_pos: grid_positions(grid, grid).to_device(device),
            cached,
            computed,
        })
    }

    /// The context of one photograph (for lesion maps), computed with the frozen encoder.
    pub fn photograph(model: &FoveaModel, rgb: &RgbImage, device: Device) -> Result<GlobalContext> {
        let enc = model
            .encoder
            .as_ref()
            .ok_or_else(|| NnError::internal("this model has no global encoder"))?;
        let size = model.spec.input_size;
        let grid = (size / 32) as i64;
        let (x, mask, frame) = prepare_rgb(rgb, size, &FovSettings::default(), grid);
        let xt = Tensor::from_slice(&x)
            .view([1, 3, size as i64, size as i64])
            .to_device(device);
        let (pooled, tokens) = tch::no_grad(|| enc.encode(&xt, false));
        Ok(GlobalContext {
            index: HashMap::from([(String::new(), 0)]),
            frames: vec![frame],
            pooled: Some(pooled),
            tokens: Some(tokens),
            mask: Tensor::from_slice(&mask).view([1, -1]).to_device(device),
            inputs: None,
            grid,
            token_pos: grid_positions(grid, grid).to_device(device),
            cached: 0,
            computed: 1,
        })
    }

    /// The context of patches given by photograph number and centre in pixels.
    pub fn batch(
        &self,
        model: &FoveaModel,
        photos: &[usize],
        centres: &[(f32, f32)],
        device: Device,
        train: bool,
    ) -> Result<BatchContext> {
        // Photographs of the batch, in order of first appearance.
        let mut unique: Vec<i64> = Vec::new();
        let mut which = Vec::with_capacity(photos.len());
        for &p in photos {
            let u = match unique.iter().position(|&q| q == p as i64) {
                Some(u) => u,
                None => {
                    unique.push(p as i64);
                    unique.len() - 1
                }
            };
            which.push(u as i64);
        }
        let mut pos = Vec::with_capacity(photos.len() * 2);
        for (&p, &(x, y)) in photos.iter().zip(centres) {
            let f = self.frames.get(p).ok_or_else(|| {
                NnError::internal(format!("photograph {p} has no global features"))
            })?;
            pos.extend(f.position(x, y));
        }
        let u = Tensor::from_slice(&unique).to_device(device);
        let (pooled, tokens) = match (&self.pooled, &self.tokens, &self.inputs) {
            (Some(p), Some(t), _) => (p.index_select(0, &u), t.index_select(0, &u)),
            (_, _, Some(inp)) => {
                let enc = model
                    .encoder
                    .as_ref()
                    .ok_or_else(|| NnError::internal("this model has no global encoder"))?;
                let x = inp
                    .index_select(0, &u.to_device(Device::Cpu))
                    .to_device(device);
                enc.encode(&x, train)
            }
            _ => return Err(NnError::internal("global context without features")),
        };
        Ok(BatchContext {
            pooled,
            tokens,
            mask: self.mask.index_select(0, &u),
            token_pos: self.token_pos.shallow_clone(),
            which: Tensor::from_slice(&which).to_device(device),
            pos: Tensor::from_slice(&pos).view([-1, 2]).to_device(device),
        })
    }

    /// The context of store patches.
    pub fn batch_of_rows(
        &self,
        model: &FoveaModel,
        rows: &[PatchRow],
        patches: &[u64],
        device: Device,
        train: bool,
    ) -> Result<BatchContext> {
        let mut photos = Vec::with_capacity(patches.len());
        let mut centres = Vec::with_capacity(patches.len());
        for &id in patches {
            let r = &rows[id as usize];
            let p = *self
                .index
                .get(&r.image_id)
                .ok_or_else(|| NnError::NoFeatures {
                    id: r.image_id.clone(),
                })?;
            photos.push(p);
            let half = r.size as f32 / 2.0;
            centres.push((r.x as f32 + half, r.y as f32 + half));
        }
        self.batch(model, &photos, &centres, device, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{ContextSpec, Fusion};
    use crate::imagenet::{IMAGENET_MEAN, IMAGENET_STD};
    use crate::models::{ModelKind, Pool};
    use image::Rgb;

    fn disc(w: u32, h: u32, cx: f32, cy: f32, r: f32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
            if d < r {
                Rgb([180, 90, 40])
            } else {
                Rgb([0, 0, 0])
            }
        })
    }

    #[test]
    fn frame_is_the_square_around_the_field_of_view() {
        let rgb = disc(400, 240, 200.0, 120.0, 100.0);
        let fov = fov_grid(&rgb, &FovSettings::default());
        let f = Frame::of_fov(&fov);
        assert!((f.side - 200.0).abs() <= 8.0, "{f:?}");
        assert!((f.x0 + f.side / 2.0 - 200.0).abs() <= 4.0, "{f:?}");
        let [px, py] = f.position(200.0, 120.0);
        assert!((px - 0.5).abs() < 0.02 && (py - 0.5).abs() < 0.02);
        // The disc's corners are outside the retina: corner tokens are masked.
        // 8 x 8 cells of 25 px: the corner cell's nearest point is 106 px from the centre.
        let m = token_mask(&fov, &f, 8);
        assert_eq!(m.len(), 64);
        assert!(!m[0] && !m[7] && !m[56] && !m[63] && m[27] && m[36] && m[8 * 3]);
        let x = global_input(&rgb, &f, 64);
        assert_eq!(x.len(), 3 * 64 * 64);
        // Centre red, corners black (normalised black is -mean/std).
        let black = -IMAGENET_MEAN[0] / IMAGENET_STD[0];
        assert!((x[0] - black).abs() < 1e-5);
        assert!(x[32 * 64 + 32] > 0.5);
    }

    #[test]
    fn cached_features_equal_recomputed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut images = Vec::new();
        for (i, (cx, r)) in [(150.0, 90.0), (170.0, 70.0)].into_iter().enumerate() {
            let p = dir.path().join(format!("img{i}.png"));
            disc(320, 200, cx, 100.0, r).save(&p).unwrap();
            images.push((format!("img{i}"), p));
        }
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = ContextSpec {
            fusion: Fusion::CrossAttention,
            input_size: 64,
            ..Default::default()
        };
        let m = FoveaModel::new(&vs.root(), ModelKind::Cnn, Pool::Max, &spec);
        let cache = dir.path().join("cache");
        let a = GlobalContext::build(
            &m,
            &vs,
            &images,
            true,
            Some(&cache),
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!((a.cached, a.computed), (0, 2));
        let b = GlobalContext::build(
            &m,
            &vs,
            &images,
            true,
            Some(&cache),
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!((b.cached, b.computed), (2, 0));
        let same =
            |x: &Option<Tensor>, y: &Option<Tensor>| x.as_ref().unwrap().equal(y.as_ref().unwrap());
        assert!(same(&a.pooled, &b.pooled) && same(&a.tokens, &b.tokens));
        assert!(a.mask.equal(&b.mask));
        assert_eq!(a.frames, b.frames);
        // The trainable path encodes the same inputs to the same features.
        let c = GlobalContext::build(&m, &vs, &images, false, None, Device::Cpu, &mut |_, _| {})
            .unwrap();
        let bc = c
            .batch(&m, &[1, 0, 1], &[(10.0, 10.0); 3], Device::Cpu, false)
            .unwrap();
        let ba = a
            .batch(&m, &[1, 0, 1], &[(10.0, 10.0); 3], Device::Cpu, false)
            .unwrap();
        assert!((bc.tokens - &ba.tokens).abs().max().double_value(&[]) < 1e-4);
        assert_eq!(Vec::<i64>::try_from(&ba.which).unwrap(), vec![0, 1, 0]);
        // A corrupt entry is recomputed, not trusted; other weights make another key.
        let key = cache_key(&m, &vs, &FovSettings::default());
        std::fs::write(cache.join(&key).join("img0.safetensors"), b"garbage").unwrap();
        let d = GlobalContext::build(
            &m,
            &vs,
            &images,
            true,
            Some(&cache),
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!((d.cached, d.computed), (1, 1));
        assert!(same(&a.pooled, &d.pooled));
        tch::manual_seed(4);
        let vs2 = nn::VarStore::new(Device::Cpu);
        let m2 = FoveaModel::new(&vs2.root(), ModelKind::Cnn, Pool::Max, &spec);
        assert_ne!(cache_key(&m2, &vs2, &FovSettings::default()), key);
    }
}
