//! `classviz saliency`: which pixels of a photo decide the class (Simonyan et
//! al. §3), with maps, overlays and faithfulness scores.

use std::path::PathBuf;

use anyhow::Result;

use crate::classes;
use crate::exit::Status;
use crate::files;
use crate::image_io::{self, Fit, Pixels};
use crate::model::ModelConfig;
use crate::report;
use crate::saliency::{self, Method};

/// `classviz saliency`.
#[derive(Debug, Clone)]
pub struct SaliencyConfig {
    pub images: Vec<PathBuf>,
    /// The class as written; `None` explains each photo's top-1.
    pub class: Option<String>,
    pub method: Method,
    pub fit: Fit,
    pub draw_box: bool,
    pub model: ModelConfig,
    pub out_dir: PathBuf,
    pub seed: u64,
    pub json: bool,
}

/// A map per photo, its overlay, the raw 16-bit map, and the deletion score
/// against a random order.
pub fn run(config: &SaliencyConfig) -> Result<Status> {
    let model = report::with_warnings(config.model.load()?);
    files::ensure_writable_dir(&config.out_dir)?;
    let fixed_class = config.class.as_deref().map(|spec| model.labels.resolve(spec)).transpose()?;
    for path in &config.images {
        let photo = image_io::load_photo(path, &model.input, config.fit)?;
        let x = model.input.normalise(&image_io::pixels_to_tensor(&photo.pixels, model.device)?)?;
        let probs = tch::no_grad(|| model.probabilities(&x))?;
        let class = match fixed_class {
            Some(class) => class,
            None => probs.f_argmax(-1, false)?.f_int64_value(&[0])?,
        };
        let prob = probs.f_double_value(&[0, class])?;
        tch::manual_seed(config.seed as i64);
        let (_, map) = saliency::attribute(&model, &x, class, config.method)?;
        let deletion_auc =
            saliency::deletion_auc(&model, &x, class, &saliency::saliency_order(&map)?)?;
        let random = saliency::random_order(map.numel() as i64, model.device)?;
        let random_auc = saliency::deletion_auc(&model, &x, class, &random)?;

        let values = saliency::display_map(&map)?;
        let raw_values = saliency::normalised_map(&map, 100.0)?;
        let (width, height) = (photo.pixels.width, photo.pixels.height);
        let bbox = if config.draw_box { Some(saliency::bounding_box(&map)?) } else { None };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let name = model.labels.name(class).to_string();
        let base = format!("{stem}_{}", classes::output_stem(class, &name));
        let heat_path = config.out_dir.join(format!("{base}_saliency.png"));
        let overlay_path = config.out_dir.join(format!("{base}_overlay.png"));
        let raw_path = config.out_dir.join(format!("{base}_saliency16.png"));
        let rgb =
            |image: image::RgbImage| Pixels { width, height, channels: 3, data: image.into_raw() };
        image_io::write_png_atomic(
            &heat_path,
            &rgb(saliency::heatmap(&values, width, height)),
            &[],
        )?;
        image_io::write_png_atomic(
            &overlay_path,
            &rgb(saliency::overlay(&photo.pixels, &values, bbox)),
            &[],
        )?;
        image_io::write_gray16_atomic(&raw_path, width, height, &saliency::map_u16(&raw_values))?;

        let report = report::SaliencyResult {
            image: path.display().to_string(),
            class,
            name,
            prob,
            method: config.method.name().to_string(),
            saliency: heat_path.display().to_string(),
            overlay: overlay_path.display().to_string(),
            raw: raw_path.display().to_string(),
            deletion_auc,
            random_auc,
            r#box: bbox.map(|(x0, y0, x1, y1)| {
                let (left, top) = photo.to_original(x0, y0, false);
                let (right, bottom) = photo.to_original(x1, y1, true);
                report::BoxCoordinates { x0: left, y0: top, x1: right, y1: bottom }
            }),
        };
        report::print_saliency(&report, config.json)?;
    }
    Ok(Status::Success)
}
