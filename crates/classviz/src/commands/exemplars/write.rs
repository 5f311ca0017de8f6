//! A finished scan's results: per target a contact sheet of its best images
//! (for a unit at a spatial tap, each cropped to the receptive field of
//! where it fires most), its line of `exemplars.jsonl`, and its record on stdout.

use std::collections::HashMap;

use anyhow::Result;
use classviz_core::exemplars::{receptive_field, Keeper, Scored};
use classviz_core::objective::Objective;
use classviz_engine::model::Model;
use classviz_records::files;
use classviz_records::grid;
use classviz_records::pixels::{self, Pixels};
use classviz_records::reports::{BoxCoordinates, Exemplar, ExemplarsResult};
use image::imageops;

use super::plan::ExemplarsPlan;
use crate::printer::Printer;

/// A box in the model's input pixels, `(x0, y0, x1, y1)`, end exclusive.
type FieldBox = (u32, u32, u32, u32);

/// Write every target's sheet and line, and print its record.
pub fn results(
    model: &Model,
    plan: &ExemplarsPlan,
    keepers: &[Keeper],
    images: usize,
    printer: &Printer,
) -> Result<()> {
    let mut fields: HashMap<(i64, i64), FieldBox> = HashMap::new();
    let mut lines = String::new();
    for (&index, keeper) in plan.targets.iter().zip(keepers) {
        let result = target_result(model, plan, index, keeper, images, &mut fields)?;
        lines.push_str(&serde_json::to_string(&result)?);
        lines.push('\n');
        printer.print(&result)?;
    }
    files::write_atomic(&plan.layout.exemplars(), lines.as_bytes())
}

fn target_result(
    model: &Model,
    plan: &ExemplarsPlan,
    index: i64,
    keeper: &Keeper,
    images: usize,
    fields: &mut HashMap<(i64, i64), FieldBox>,
) -> Result<ExemplarsResult> {
    let target = plan.target(index, &model.info);
    let sheet = plan.layout.exemplars_sheet(&target);
    let mut tiles = Vec::with_capacity(keeper.best.len());
    let mut top = Vec::with_capacity(keeper.best.len());
    for (rank, scored) in keeper.best.iter().enumerate() {
        let (exemplar, tile) = exemplar(model, plan, scored, fields, true)?;
        tiles.push((
            format!("{} {:.2}", rank + 1, scored.activation),
            tile.expect("a tile was asked for"),
        ));
        top.push(exemplar);
    }
    let bottom = keeper
        .worst
        .iter()
        .map(|scored| Ok(exemplar(model, plan, scored, fields, false)?.0))
        .collect::<Result<Vec<_>>>()?;
    if !tiles.is_empty() {
        let composed = grid::compose(&tiles, None);
        pixels::write_png_atomic(&sheet, &Pixels::from_rgb(composed), &[])?;
    }
    let tap = plan.objective.tap().map(|t| t.name.clone());
    Ok(ExemplarsResult {
        target: describe(&plan.objective, index, model),
        class: tap.is_none().then_some(index),
        channel: tap.is_some().then_some(index),
        tap,
        sheet: sheet.display().to_string(),
        top,
        bottom,
        images,
    })
}

/// `class 100 (black swan)`, `channel:_blocks.8:5`.
fn describe(objective: &Objective, index: i64, model: &Model) -> String {
    match objective.tap() {
        Some(_) => format!("{objective}:{index}"),
        None => format!("class {index} ({})", model.info.labels.name(index)),
    }
}

/// One kept image's record, and with `tile` its tile for the sheet: the
/// fitted photo, or for a unit at a spatial tap the receptive field of where
/// it fires most, cropped from it.
fn exemplar(
    model: &Model,
    plan: &ExemplarsPlan,
    scored: &Scored,
    fields: &mut HashMap<(i64, i64), FieldBox>,
    tile: bool,
) -> Result<(Exemplar, Option<image::RgbImage>)> {
    let path = &plan.images[scored.image];
    let photo = pixels::load_photo(path, model.input(), plan.fit)?;
    let field = match (plan.objective.tap(), scored.position) {
        (Some(tap), Some(position)) if spatial(model, plan) => Some(match fields.get(&position) {
            Some(&field) => field,
            None => {
                let field = receptive_field(model, tap.id, position)?;
                fields.insert(position, field);
                field
            }
        }),
        _ => None,
    };
    let r#box = field.map(|(x0, y0, x1, y1)| {
        let (left, top) = photo.to_original(x0, y0, false);
        let (right, bottom) = photo.to_original(x1 - 1, y1 - 1, true);
        BoxCoordinates { x0: left, y0: top, x1: right, y1: bottom }
    });
    let tile = tile.then(|| {
        let rgb = photo.pixels.to_rgb();
        match field {
            Some((x0, y0, x1, y1)) => {
                let crop = imageops::crop_imm(&rgb, x0, y0, x1 - x0, y1 - y0).to_image();
                imageops::resize(&crop, rgb.width(), rgb.height(), imageops::FilterType::Nearest)
            }
            None => rgb,
        }
    });
    Ok((Exemplar { image: path.display().to_string(), activation: scored.activation, r#box }, tile))
}

/// Whether the objective's tap has more than one position.
fn spatial(model: &Model, plan: &ExemplarsPlan) -> bool {
    plan.objective
        .tap()
        .and_then(|t| model.info.tap_info(t.id).grid_shape().ok())
        .is_some_and(|[_, h, w]| h * w > 1)
}
