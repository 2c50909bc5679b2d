//! Where the tile sampler's photographs come from: the photographs of one split of a
//! dataset, the split given image by image by the caller (the split of the patch store
//! extracted from that dataset, so that the patch classifier and the segmentation model
//! share one split), or photographs already in memory (tests).

use std::collections::{BTreeMap, HashMap};

use fovea_data::{load_sample, Dataset, ImageRecord, Sample, Split};
use fovea_store::PatchRow;

use crate::error::{LoaderError, Result};

/// Photographs with their masks, by position 0..len.
pub trait SampleSource: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The image id of photograph `k`.
    fn id(&self, k: usize) -> &str;
    /// Decodes photograph `k` and its four masks.
    fn load(&self, k: usize) -> Result<Sample>;
}

/// The image -> split map of a patch store's index (CONTRACTS 2: every patch carries its
/// image's split). An image whose patches disagree is an error.
pub fn store_splits(rows: &[PatchRow]) -> Result<HashMap<String, Split>> {
    let mut map: HashMap<String, Split> = HashMap::new();
    for row in rows {
        match map.get(&row.image_id) {
            Some(&s) if s != row.split => {
                return Err(LoaderError::SplitMap {
                    reason: format!(
                        "image '{}' has patches in both '{s}' and '{}'",
                        row.image_id, row.split
                    ),
                })
            }
            Some(_) => {}
            None => {
                map.insert(row.image_id.clone(), row.split);
            }
        }
    }
    Ok(map)
}

/// The photographs of one split of a dataset, decoded on demand with fovea-data's readers.
#[derive(Clone, Debug)]
pub struct DatasetSource {
    records: Vec<ImageRecord>,
}

impl DatasetSource {
    /// The records of `dataset` whose image `splits` puts in `split`, in id order. The map
    /// must name exactly the dataset's images: an image of the dataset missing from it, or
    /// an image of the map missing from the dataset, is an error (the store was extracted
    /// from another dataset), so no photograph can leak into the wrong split. No image in
    /// `split` is an error too.
    pub fn new(
        dataset: &Dataset,
        splits: &HashMap<String, Split>,
        split: Split,
    ) -> Result<DatasetSource> {
        let ids: BTreeMap<&str, ()> = dataset
            .records
            .iter()
            .map(|r| (r.id.as_str(), ()))
            .collect();
        let mut unknown: Vec<&str> = splits
            .keys()
            .map(String::as_str)
            .filter(|id| !ids.contains_key(id))
            .collect();
        unknown.sort_unstable();
        if let Some(first) = unknown.first() {
            return Err(LoaderError::SplitMap {
                reason: format!(
                    "{} image(s) of the split are not in the dataset {}, e.g. '{first}'",
                    unknown.len(),
                    dataset.root.display()
                ),
            });
        }
        let mut records = Vec::new();
        for r in &dataset.records {
            match splits.get(&r.id) {
                None => {
                    return Err(LoaderError::SplitMap {
                        reason: format!(
                            "image '{}' of the dataset {} has no split",
                            r.id,
                            dataset.root.display()
                        ),
                    })
                }
                Some(&s) if s == split => records.push(r.clone()),
                Some(_) => {}
            }
        }
        if records.is_empty() {
            return Err(LoaderError::SplitMap {
                reason: format!(
                    "no image of {} is in split '{split}'",
                    dataset.root.display()
                ),
            });
        }
        Ok(DatasetSource { records })
    }

    pub fn records(&self) -> &[ImageRecord] {
        &self.records
    }
}

impl SampleSource for DatasetSource {
    fn len(&self) -> usize {
        self.records.len()
    }
    fn id(&self, k: usize) -> &str {
        &self.records[k].id
    }
    fn load(&self, k: usize) -> Result<Sample> {
        Ok(load_sample(&self.records[k])?)
    }
}

/// Photographs already decoded (tests, small fixtures).
#[derive(Clone, Debug)]
pub struct MemorySource {
    pub samples: Vec<Sample>,
}

impl SampleSource for MemorySource {
    fn len(&self) -> usize {
        self.samples.len()
    }
    fn id(&self, k: usize) -> &str {
        &self.samples[k].id
    }
    fn load(&self, k: usize) -> Result<Sample> {
        Ok(self.samples[k].clone())
    }
}
