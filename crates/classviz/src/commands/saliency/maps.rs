//! One map's files: the colour map, the overlay on the photo (with the box
//! if asked), the raw 16-bit map and, with `--segment`, the §3.1 mask.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use image::RgbImage;
use tch::Tensor;

use super::plan::SaliencyPlan;
use super::subject::Subject;
use classviz_core::attribution::faithfulness::{self, BaselineDraw};
use classviz_core::attribution::{self, Attribution, Method};
use classviz_core::segment;
use classviz_engine::model::Model;
use classviz_records::heatmap;
use classviz_records::layout::MapFile;
use classviz_records::pixels::{self, Pixels};
use classviz_records::reports::{FaithfulnessScores, SaliencyResult};

/// The files of one map, and its overlay for the sheet.
pub struct Written {
    pub heat: PathBuf,
    pub overlay: PathBuf,
    pub raw: PathBuf,
    pub overlay_image: RgbImage,
    pub bbox: Option<(u32, u32, u32, u32)>,
}

/// `…_<method>_saliency.png` (colour map), `_overlay.png` (over the photo,
/// with the box if asked) and `_saliency16.png` (the raw map, 16-bit).
pub fn write(
    plan: &SaliencyPlan,
    subject: &Subject,
    method: Method,
    map: &Tensor,
) -> Result<Written> {
    let photo = &subject.photo;
    let values = attribution::map_values(map)?;
    let shown = heatmap::for_display(&values);
    let raw_values = heatmap::normalised(&values, 100.0);
    let (width, height) = (photo.pixels.width, photo.pixels.height);
    let bbox = if plan.draw_box { Some(attribution::bounding_box(map)?) } else { None };
    let file = |what| plan.map_file(&subject.path, &subject.target, method, what);
    let (heat, overlay, raw) = (file(MapFile::Heat), file(MapFile::Overlay), file(MapFile::Raw));
    pixels::write_png_atomic(
        &heat,
        &Pixels::from_rgb(heatmap::heatmap(&shown, width, height)),
        &[],
    )?;
    let overlay_image = heatmap::overlay(&photo.pixels, &shown, bbox);
    pixels::write_png_atomic(&overlay, &Pixels::from_rgb(overlay_image.clone()), &[])?;
    pixels::write_gray16_atomic(&raw, width, height, &heatmap::to_u16(&raw_values))?;
    Ok(Written { heat, overlay, raw, overlay_image, bbox })
}

/// The JSON record of one method's map (its sheet, mask and box are the caller's).
pub fn record(
    subject: &Subject,
    plan: &SaliencyPlan,
    model: &Model,
    attribution: Attribution,
    seconds: f64,
    faithfulness: Option<FaithfulnessScores>,
    written: &Written,
) -> SaliencyResult {
    SaliencyResult {
        image: subject.path.display().to_string(),
        class: subject.class,
        name: subject.name.clone(),
        prob: subject.prob,
        method: attribution.method.to_string(),
        smoothing: plan.smoothing(attribution.method),
        tap: attribution.tap.map(|t| model.info.tap_info(t).name.clone()),
        saliency: written.heat.display().to_string(),
        overlay: written.overlay.display().to_string(),
        raw: written.raw.display().to_string(),
        seconds,
        faithfulness,
        sheet: None,
        r#box: written.bbox.map(|b| subject.original_box(b)),
        mask: None,
        mask_box: None,
    }
}

/// The map's deletion and insertion scores, against the photo's random
/// baseline, drawn as far as this map's verdict needs (`draw`, shared by the
/// photo's maps).
pub fn faithfulness(
    model: &Model,
    subject: &Subject,
    map: &Tensor,
    draw: &mut BaselineDraw,
) -> Result<FaithfulnessScores> {
    let started = Instant::now();
    let order = faithfulness::saliency_order(map)?;
    let scores = faithfulness::faithfulness(model, &subject.x, subject.class, &[order])?[0];
    let random = draw.deciding(model, &subject.x, subject.class, scores)?;
    Ok(FaithfulnessScores {
        deletion_auc: scores.deletion,
        insertion_auc: scores.insertion,
        random_auc: random.deletion_mean,
        random_deletion_std: random.deletion_std,
        random_insertion_auc: random.insertion_mean,
        random_insertion_std: random.insertion_std,
        random_orders: random.orders,
        beats_random: random.beaten_by(scores),
        faithfulness_seconds: started.elapsed().as_secs_f64(),
    })
}

/// A sheet tile's label: the method, and with scores both of them, ok where
/// the map beats random.
pub fn tile_label(method: Method, scores: Option<&FaithfulnessScores>) -> String {
    match scores {
        Some(s) => {
            let mark = if s.beats_random { "ok" } else { "x" };
            format!("{method} del {:.3} ins {:.3} {mark}", s.deletion_auc, s.insertion_auc)
        }
        None => method.to_string(),
    }
}

/// `--segment`: the §3.1 mask of the map, written as `…_<method>_mask.png`,
/// and the box of its largest part, in the photo's pixels.
pub fn segmented(
    plan: &SaliencyPlan,
    subject: &Subject,
    map: &Tensor,
    method: Method,
    result: &mut SaliencyResult,
) -> Result<()> {
    let pixels = &subject.photo.pixels;
    let (width, height) = (pixels.width as usize, pixels.height as usize);
    let values = heatmap::normalised(&attribution::map_values(map)?, 100.0);
    let rgb: Vec<[f64; 3]> = (0..width * height).map(|p| pixels.rgb(p)).collect();
    let segmentation = segment::segment(&rgb, &values, width, height)?;
    let path = plan.map_file(&subject.path, &subject.target, method, MapFile::Mask);
    let mask = Pixels {
        width: pixels.width,
        height: pixels.height,
        channels: 1,
        data: segmentation.mask.iter().map(|&m| if m { 255 } else { 0 }).collect(),
    };
    pixels::write_png_atomic(&path, &mask, &[])?;
    result.mask = Some(path.display().to_string());
    result.mask_box = segmentation.bbox.map(|b| subject.original_box(b));
    Ok(())
}
