//! An exemplar scan, resolved once against the model: the folder's images
//! (sorted, and this shard's share), the objective and its targets, how many
//! images each keeps, the batch, and the key that an interrupted scan, a
//! shard and a merge must share.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use classviz_core::objective::{ClassScore, Objective};
use classviz_engine::model::ModelInfo;
use classviz_records::classes;
use classviz_records::exit::usage_error;
use classviz_records::layout::{Layout, Target, Unit};
use classviz_records::pixels::Fit;
use classviz_records::shard::Shard;
use tch::Device;

use crate::commands::visualise::provenance::device_name;
use crate::flags::values::ObjectiveKind;
use crate::flags::ExemplarsArgs;

/// Images per forward pass when `--batch` does not say.
const CPU_BATCH: usize = 16;
const CUDA_BATCH: usize = 128;
/// What the scan reads (by extension, in any case).
const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "webp"];

/// `classviz exemplars`, resolved.
pub struct ExemplarsPlan {
    pub folder: PathBuf,
    /// Every image under the folder, sorted: an image's place here is its
    /// identity (and the tie-breaker) in every shard.
    pub images: Vec<PathBuf>,
    /// This shard's places in `images`, in order.
    pub mine: Vec<usize>,
    pub objective: Objective,
    pub targets: Vec<i64>,
    pub top: usize,
    pub bottom: usize,
    pub fit: Fit,
    pub batch: usize,
    pub layout: Layout,
    /// `Some((K, N))` when this is shard K of N.
    pub shard: Option<(usize, usize)>,
    /// What an interrupted scan, a shard and a merge must share to be combined.
    pub key: String,
}

impl ExemplarsPlan {
    pub fn resolve(
        args: &ExemplarsArgs,
        model: &ModelInfo,
        device: Device,
    ) -> Result<ExemplarsPlan> {
        let folder = checked_folder(&args.images, &args.out)?;
        let images = image_files(&folder)?;
        let shard = match (&args.shard, args.merge) {
            (Some(spec), _) => Some(spec.resolve_from_env()?),
            _ => None,
        };
        let mine: Vec<usize> = match shard {
            Some(shard) => (0..images.len()).filter(|i| i % shard.count == shard.index).collect(),
            None => (0..images.len()).collect(),
        };
        let objective = objective(args, model)?;
        let targets = targets(args, &objective, model)?;
        let batch = args.batch.unwrap_or(if device.is_cuda() { CUDA_BATCH } else { CPU_BATCH });
        let key = serde_json::json!({
            "model": model.digest, "folder": folder.display().to_string(), "images": listing_digest(&images),
            "objective": objective.to_string(), "targets": targets, "top": args.top, "bottom": args.bottom,
            "fit": args.fit.to_string(), "device": device_name(device),
        })
        .to_string();
        Ok(ExemplarsPlan {
            folder,
            images,
            mine,
            objective,
            targets,
            top: args.top,
            bottom: args.bottom,
            fit: args.fit,
            batch,
            layout: Layout::new(&args.out),
            shard: shard.map(|s: Shard| (s.index, s.count)),
            key,
        })
    }

    /// What target `index` is, as the layout names it.
    pub fn target(&self, index: i64, model: &ModelInfo) -> Target {
        let unit = |unit| Target::Unit {
            tap: self.objective.tap().map(|t| t.name.clone()).unwrap_or_default(),
            unit,
        };
        match self.objective {
            Objective::Channel(_) => unit(Unit::Channel(index)),
            Objective::Neuron(_) => unit(Unit::Neuron(index)),
            _ => Target::Class { index, name: model.labels.name(index).to_string() },
        }
    }
}

/// The folder to scan, which must exist and must not hold the output folder:
/// nothing is ever written into it.
fn checked_folder(images: &Path, out: &Path) -> Result<PathBuf> {
    let folder = images
        .canonicalize()
        .with_context(|| format!("--images {}: no such folder", images.display()))?;
    if !folder.is_dir() {
        return Err(usage_error(format!("--images {}: not a folder", images.display())));
    }
    let out = out.canonicalize().unwrap_or_else(|_| out.to_path_buf());
    if out.starts_with(&folder) {
        return Err(usage_error(format!(
            "--out {} is inside --images {}: exemplars never write into the folder they read; choose another --out",
            out.display(),
            images.display()
        )));
    }
    Ok(folder)
}

/// Every image file under `folder`, recursively, sorted by path.
pub fn image_files(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .with_context(|| format!("reading the folder {}", dir.display()))?;
        for entry in entries {
            let path =
                entry.with_context(|| format!("reading the folder {}", dir.display()))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if is_image(&path) {
                found.push(path);
            }
        }
    }
    found.sort();
    if found.is_empty() {
        bail!("--images {}: no PNG, JPEG or WebP file in it", folder.display());
    }
    Ok(found)
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|known| known.eq_ignore_ascii_case(e)))
}

/// A short digest of the image list, so that a scan of a changed folder is
/// not combined with one of the old.
fn listing_digest(images: &[PathBuf]) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    images.hash(&mut hasher);
    format!("{}:{:016x}", images.len(), hasher.finish())
}

/// The objective: a class's logit (S_c), or a channel or neuron of a tap.
fn objective(args: &ExemplarsArgs, model: &ModelInfo) -> Result<Objective> {
    let Some(flag) = &args.objective else { return Ok(Objective::default()) };
    let tap = || model.tap(flag.tap.as_deref().unwrap_or_default());
    Ok(match flag.kind {
        ObjectiveKind::Class(ClassScore::Logit) => Objective::default(),
        ObjectiveKind::Class(other) => {
            return Err(usage_error(format!(
                "exemplars rank images by a class's logit, not its {other}: drop --objective"
            )))
        }
        ObjectiveKind::Channel => Objective::Channel(tap()?),
        ObjectiveKind::Neuron => Objective::Neuron(tap()?),
        ObjectiveKind::Layer => {
            return Err(usage_error(
                "exemplars show classes, channels and neurons, not a whole layer: use channel:TAP or neuron:TAP",
            ))
        }
    })
}

/// The classes, or the tap's channels.
fn targets(args: &ExemplarsArgs, objective: &Objective, model: &ModelInfo) -> Result<Vec<i64>> {
    let given = args.classes.selection();
    let Some(tap) = objective.tap() else {
        if given.list.is_none() && given.file.is_none() {
            return Err(usage_error("give --class (or --classes-file), or a unit --objective"));
        }
        return given.resolve(&model.labels);
    };
    if given.list.is_some() || given.file.is_some() {
        return Err(usage_error(format!(
            "--objective {objective} shows a unit, not a class: drop --class"
        )));
    }
    let unit = args.objective.as_ref().and_then(|o| o.unit);
    let list = match (&args.channels, unit) {
        (Some(list), None) => list.clone(),
        (None, Some(unit)) => unit.to_string(),
        (Some(_), Some(_)) => {
            return Err(usage_error("--objective names its channel already: drop --channels"))
        }
        (None, None) => {
            return Err(usage_error(format!(
                "{objective} needs a channel: {objective}:K, or --channels LIST"
            )))
        }
    };
    let channels = model.tap_info(tap.id).grid_shape()?[0] as usize;
    classes::resolve_indices(
        &list,
        channels,
        &format!("channel of tap {} ({channels} channels)", tap.name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_found_recursively_by_extension_and_sorted() {
        let dir =
            std::env::temp_dir().join(format!("classviz-exemplar-list-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("b")).unwrap();
        for name in ["b/z.JPG", "a.png", "notes.txt", "b/c.webp", "d.jpeg"] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        let found: Vec<String> = image_files(&dir)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(found, ["a.png", "b/c.webp", "b/z.JPG", "d.jpeg"]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
