//! Inference with a trained run: loading its best model (`RUN/model/`), the photographs'
//! global features a fused model reads, and the model's probabilities over the patches of
//! a store split. Training's validation, `fovea eval`, lesion maps and the ablation use
//! these; nothing here trains.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use fovea_data::Split;
use fovea_loader::{Loader, Order, Sampler, Selection};
use fovea_store::Store;
use tch::nn;
use tch::{Device, Tensor};

use crate::checkpoint::{load_vars, read_model_info, ModelInfo};
use crate::context::{BatchContext, ContextSettings, FoveaModel, GlobalContext};
use crate::error::{NnError, Result};
use fovea_run::RunDir;

use crate::loss::Loss;
use crate::settings::TrainSettings;

/// Loads a run's best model (`RUN/model/`) onto `device`: the variables, the model built
/// from `model.toml`, that description, and the model folder.
pub fn load_run_model(
    run: &Path,
    device: Device,
) -> Result<(nn::VarStore, FoveaModel, ModelInfo, PathBuf)> {
    let dir = RunDir::new(run).model();
    let info = read_model_info(dir.path())?;
    let mut vs = nn::VarStore::new(device);
    if info.num_classes != 4 {
        return Err(NnError::malformed(
            dir.info(),
            format!(
                "num_classes = {}, Fovea's models have 4 (MA, HE, EX, SE)",
                info.num_classes
            ),
        ));
    }
    let model = FoveaModel::new(&vs.root(), info.model, info.pool, &info.context);
    load_vars(&mut vs, &dir.weights())?;
    crate::finite::check_finite_weights(&vs, &dir.weights())?;
    Ok((vs, model, info, dir.path().to_path_buf()))
}

/// The global context of a batch of store patches, for models that read it.
pub(crate) fn context_of(
    model: &FoveaModel,
    gctx: Option<&GlobalContext>,
    store: &Store,
    patches: &[u64],
    device: Device,
    train: bool,
) -> Result<Option<BatchContext>> {
    if !model.needs_context() {
        return Ok(None);
    }
    let g = gctx.ok_or_else(|| NnError::MissingContext {
        fusion: model.fusion().to_string(),
    })?;
    g.batch_of_rows(model, &store.rows, patches, device, train)
        .map(Some)
}

/// The photographs of a store's patches, found in `dataset` (default: the dataset the
/// store was extracted from): `(image id, path)` in id order.
pub fn store_photographs(store: &Store, dataset: Option<&Path>) -> Result<Vec<(String, PathBuf)>> {
    let dir = dataset
        .map(Path::to_path_buf)
        .or_else(|| store.settings.dataset.clone())
        .ok_or_else(|| {
            NnError::input(
                &store.dir,
                "the store does not say which dataset it came from; give the photographs with context.dataset",
            )
        })?;
    let ds = fovea_data::Dataset::open(&dir).map_err(NnError::Photographs)?;
    let ids: BTreeSet<&str> = store.rows.iter().map(|r| r.image_id.as_str()).collect();
    ids.into_iter()
        .map(|id| {
            ds.records
                .iter()
                .find(|r| r.id == id)
                .map(|r| (id.to_string(), r.image.clone()))
                .ok_or_else(|| {
                    NnError::input(
                        &dir,
                        format!(
                            "photograph {id} of the store {} is not in this dataset",
                            store.dir.display()
                        ),
                    )
                })
        })
        .collect()
}

/// The global features of every photograph of the store, cached under `cache`;
/// `message` receives what is worth a line on the console.
pub fn store_context(
    model: &FoveaModel,
    vs: &nn::VarStore,
    store: &Store,
    settings: &ContextSettings,
    cache: &Path,
    device: Device,
    message: &dyn Fn(&str),
) -> Result<Option<GlobalContext>> {
    if !model.needs_context() {
        return Ok(None);
    }
    // Without the photographs, a frozen encoder's cached features still serve.
    let images = match store_photographs(store, settings.dataset.as_deref()) {
        Ok(v) => v,
        Err(e) if settings.frozen => {
            message(&format!("{e}; using the cached global features"));
            let ids: BTreeSet<&str> = store.rows.iter().map(|r| r.image_id.as_str()).collect();
            ids.into_iter()
                .map(|id| (id.to_string(), PathBuf::new()))
                .collect()
        }
        Err(e) => return Err(e),
    };
    let t0 = Instant::now();
    let g = GlobalContext::build(
        model,
        vs,
        &images,
        settings.frozen,
        settings.frozen.then_some(cache),
        device,
        &mut |_, _| {},
    )?;
    message(&format!(
        "global features of {} photographs ({} from the cache, {} computed) in {:.1} s",
        images.len(),
        g.cached,
        g.computed,
        t0.elapsed().as_secs_f64()
    ));
    Ok(Some(g))
}

/// The global features a trained run's model needs for the patches of `store` (none for
/// the patch-only and attention-pool variants), with the run's context settings
/// (`RUN/config.toml`) and cache (`RUN/global_cache` unless it set another).
pub fn run_store_context(
    run: &Path,
    model: &FoveaModel,
    vs: &nn::VarStore,
    store: &Store,
    device: Device,
) -> Result<Option<GlobalContext>> {
    if !model.needs_context() {
        return Ok(None);
    }
    let run = RunDir::new(run);
    let cfg = run.config();
    let settings = if cfg.exists() {
        TrainSettings::from_toml_file(&cfg)?.context
    } else {
        Default::default()
    };
    let cache = settings
        .cache_dir
        .clone()
        .unwrap_or_else(|| run.global_cache());
    store_context(model, vs, store, &settings, &cache, device, &|_: &str| {})
}

/// Normalised patches `[N, 3, P, P]` of `ids` (no augmentation) and, per lesion, whether
/// any of them has it.
pub fn patches_tensor(store: &Store, ids: &[u64], device: Device) -> Result<(Tensor, [u8; 4])> {
    let p = store.settings.patch_size as usize;
    let n = 3 * p * p;
    let mut buf = vec![0f32; ids.len() * n];
    let mut any = [0u8; 4];
    for (i, &id) in ids.iter().enumerate() {
        let src = store
            .patches
            .patch(id as usize)
            .ok_or_else(|| NnError::input(&store.dir, format!("no patch {id}")))?;
        fovea_loader::to_tensor_layout(src, p, &mut buf[i * n..(i + 1) * n]);
        for (c, l) in any.iter_mut().enumerate() {
            *l = (*l).max(store.rows[id as usize].labels[c]);
        }
    }
    let x = Tensor::from_slice(&buf)
        .view([ids.len() as i64, 3, p as i64, p as i64])
        .to_device(device);
    Ok((x, any))
}

/// Patch ids, truth `[N][4]`, sigmoid probabilities `[N][4]` and mean loss.
pub type SplitPredictions = (Vec<u64>, Vec<[u8; 4]>, Vec<[f32; 4]>, f64);

/// Sigmoid probabilities `[N][4]`, truth, and mean loss of `model` over the non-black
/// patches of `split` (or only `patches` of it), in index order.
#[allow(clippy::too_many_arguments)]
pub fn predict_split(
    model: &FoveaModel,
    gctx: Option<&GlobalContext>,
    store: &Arc<Store>,
    split: Split,
    patches: Option<Vec<u64>>,
    batch_size: usize,
    workers: usize,
    device: Device,
    loss: Option<&Loss>,
) -> Result<SplitPredictions> {
    let sampler = match patches {
        None => Sampler::in_order(&store.rows, split),
        Some(ids) => Sampler::new(
            &store.rows,
            split,
            Selection::Subset {
                subset: fovea_store::balance::Subset {
                    weights: vec![1.0; ids.len()],
                    patches: ids,
                },
                origin: None,
            },
            Order::Index,
            0,
        ),
    }?;
    let loader = Loader::eval_with(store.clone(), sampler, batch_size, workers)?;
    let p = loader.patch_size() as i64;
    let (mut ids, mut truth, mut probs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut loss_sum, mut n) = (0.0, 0usize);
    tch::no_grad(|| -> Result<()> {
        for batch in loader.epoch(0, 0)? {
            let b = batch?;
            let x = Tensor::from_slice(&b.images)
                .view([b.size as i64, 3, p, p])
                .to_device(device);
            let y = Tensor::from_slice(&b.labels)
                .view([b.size as i64, 4])
                .to_device(device);
            let ctx = context_of(model, gctx, store, &b.patches, device, false)?;
            let (logits, _) = model.forward(&x, ctx.as_ref(), false)?;
            if let Some(l) = loss {
                loss_sum += l.forward(&logits, &y).double_value(&[]) * b.size as f64;
            }
            n += b.size;
            let pr: Vec<f32> = Vec::try_from(logits.sigmoid().to_device(Device::Cpu).view([-1]))?;
            for i in 0..b.size {
                ids.push(b.patches[i]);
                truth.push(std::array::from_fn(|c| b.labels[i * 4 + c] as u8));
                probs.push(std::array::from_fn(|c| pr[i * 4 + c]));
            }
        }
        Ok(())
    })?;
    Ok((
        ids,
        truth,
        probs,
        if n > 0 { loss_sum / n as f64 } else { f64::NAN },
    ))
}
