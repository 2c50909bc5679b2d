//! Throughput of the input pipeline on 128x128 patches (run with `--ignored --nocapture`,
//! in release mode for meaningful numbers).

mod common;

use std::sync::Arc;

use fovea_loader::{bench_pipeline, AugmentSettings, BenchSettings};
use fovea_store::Store;

#[test]
#[ignore]
fn throughput_128() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::build_store(dir.path(), 3, 1024, 768, 128);
    let store = Arc::new(Store::open(&path).unwrap());
    for (workers, augment) in [
        (1, AugmentSettings::default()),
        (2, AugmentSettings::default()),
        (2, AugmentSettings::off()),
    ] {
        let r = bench_pipeline(
            store.clone(),
            &BenchSettings {
                batch_size: 32,
                workers,
                samples: 4096,
                augment,
                ..Default::default()
            },
        )
        .unwrap();
        println!(
            "P={} B={} workers={} augment={}: {:.0} samples/s ({} samples in {:.2} s, first batch \
             {:.3} s); augmentation alone on one thread {:.0} samples/s ({:.3} ms each)",
            r.patch_size,
            r.batch_size,
            r.workers,
            r.augment,
            r.samples_per_s,
            r.samples,
            r.seconds,
            r.first_batch_s,
            r.augment_only_samples_per_s,
            1000.0 / r.augment_only_samples_per_s
        );
        assert!(r.samples >= 4096);
        assert!(r.samples_per_s > 0.0);
    }
}
