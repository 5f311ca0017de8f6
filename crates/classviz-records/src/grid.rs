//! The contact sheet: the class images of a run as labelled tiles in one PNG,
//! rebuilt from the files on disk so that it also covers resumed and sharded runs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use image::{imageops, Rgb, RgbImage};

use crate::pixels::{self, Pixels};

/// Tiles shrink so that the sheet stays at most this wide.
const MAX_SHEET_WIDTH: u32 = 4096;
/// Glyphs are 8×8 pixels, drawn at this scale (1 on small tiles).
const FONT_SCALE: u32 = 2;
const GLYPH: u32 = 8;
/// Label lines under each tile: at least this many (so that sheets line up),
/// at most `MAX_LABEL_LINES`.
const LABEL_LINES: u32 = 2;
const MAX_LABEL_LINES: u32 = 4;
const PADDING: u32 = 3;
const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([0, 0, 0]);

/// Write `<dir>/grid.png` with one tile per entry (an image path and its
/// label) whose image exists, in that order. Returns the path and the tile count.
pub fn write_grid(path: &Path, entries: &[(PathBuf, String)]) -> Result<(PathBuf, usize)> {
    let mut tiles = Vec::new();
    for (path, label) in entries {
        if path.exists() {
            let image = image::open(path)
                .with_context(|| format!("reading {} for the grid", path.display()))?;
            tiles.push((label.clone(), image.to_rgb8()));
        }
    }
    if tiles.is_empty() {
        let dir = path.parent().unwrap_or(Path::new("."));
        bail!("no class images in {} to put in a grid", dir.display());
    }
    let count = tiles.len();
    let sheet = compose(&tiles, None);
    pixels::write_png_atomic(
        path,
        &Pixels::from_rgb(sheet),
        &[("Software".into(), format!("classviz {}", env!("CARGO_PKG_VERSION")))],
    )?;
    Ok((path.to_path_buf(), count))
}

/// Lay labelled tiles out in `columns` columns (default: a near-square grid),
/// each with its label below, resized to the largest tile's width (at most
/// what keeps the sheet within `MAX_SHEET_WIDTH`).
pub fn compose(tiles: &[(String, RgbImage)], columns: Option<u32>) -> RgbImage {
    let columns = columns
        .unwrap_or_else(|| (tiles.len() as f64).sqrt().ceil() as u32)
        .clamp(1, tiles.len().max(1) as u32);
    let rows = (tiles.len() as u32).div_ceil(columns);
    let native = tiles.iter().map(|(_, t)| t.width()).max().unwrap_or(1);
    let tile = native.min(MAX_SHEET_WIDTH / columns).max(GLYPH * 4);
    let scale = if tile >= 20 * GLYPH * FONT_SCALE / 2 { FONT_SCALE } else { 1 };
    let per_line = (tile / (GLYPH * scale)) as usize;
    let lines = tiles
        .iter()
        .map(|(label, _)| wrap(label, per_line).len() as u32)
        .max()
        .unwrap_or(0)
        .clamp(LABEL_LINES, MAX_LABEL_LINES);
    let label_height = lines * GLYPH * scale + 2 * PADDING;
    let cell = (tile + 2 * PADDING, tile + PADDING + label_height);
    let mut sheet = RgbImage::from_pixel(columns * cell.0, rows * cell.1, BACKGROUND);
    for (position, (label, image)) in tiles.iter().enumerate() {
        let (x, y) = ((position as u32 % columns) * cell.0, (position as u32 / columns) * cell.1);
        let resized = if image.width() == tile && image.height() == tile {
            image.clone()
        } else {
            imageops::resize(image, tile, tile, imageops::FilterType::Triangle)
        };
        imageops::replace(&mut sheet, &resized, i64::from(x + PADDING), i64::from(y + PADDING));
        for (line, text) in wrap(label, per_line).iter().take(lines as usize).enumerate() {
            let baseline = y + PADDING + tile + PADDING + line as u32 * GLYPH * scale;
            draw_text(&mut sheet, text, x + PADDING, baseline, scale);
        }
    }
    sheet
}

/// Split `text` into lines of at most `width` characters, at spaces where possible.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while !word.is_empty() {
            let current = lines.last().map_or(usize::MAX, |l| l.chars().count());
            if current != usize::MAX && current + 1 + word.len() <= width {
                let line = lines.last_mut().expect("checked above");
                line.push(' ');
                line.extend(word.drain(..));
            } else {
                let take = word.len().min(width.max(1));
                lines.push(word.drain(..take).collect());
            }
        }
    }
    lines
}

/// Draw ASCII text with the 8×8 public-domain font; other characters show as '?'.
fn draw_text(sheet: &mut RgbImage, text: &str, left: u32, top: u32, scale: u32) {
    for (index, character) in text.chars().enumerate() {
        let code = if character.is_ascii() { character as usize } else { '?' as usize };
        let glyph = font8x8::legacy::BASIC_LEGACY[code];
        let origin = left + index as u32 * GLYPH * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for column in 0..GLYPH {
                if bits & (1 << column) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (px, py) =
                            (origin + column * scale + dx, top + row as u32 * scale + dy);
                        if px < sheet.width() && py < sheet.height() {
                            sheet.put_pixel(px, py, INK);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classes::Labels;

    #[test]
    fn wrap_breaks_at_spaces_and_splits_long_words() {
        assert_eq!(wrap("100 black swan", 9), vec!["100 black", "swan"]);
        assert_eq!(wrap("7 abcdefghij", 4), vec!["7", "abcd", "efgh", "ij"]);
    }

    #[test]
    fn grid_has_one_labelled_tile_per_image() {
        let dir = std::env::temp_dir().join(format!("classviz-grid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let labels = Labels::new(["a", "b", "c", "d", "e"].map(String::from).to_vec());
        for class in [0i64, 2, 3, 4] {
            let pixels = Pixels {
                width: 32,
                height: 32,
                channels: 3,
                data: vec![class as u8 * 50; 32 * 32 * 3],
            };
            let name = format!("{}.png", crate::layout::class_stem(class, labels.name(class)));
            pixels::write_png_atomic(&dir.join(name), &pixels, &[]).unwrap();
        }
        let entries: Vec<(PathBuf, String)> = [4, 0, 1, 2, 3]
            .iter()
            .map(|&class| {
                let name = format!("{}.png", crate::layout::class_stem(class, labels.name(class)));
                (dir.join(name), format!("{class} {}", labels.name(class)))
            })
            .collect();
        let (path, count) = write_grid(&dir.join("grid.png"), &entries).unwrap();
        assert_eq!(count, 4, "class 1 has no image");
        let sheet = image::open(&path).unwrap().to_rgb8();
        // 2×2 cells of (32 + 6) × (32 + 3 + 2·8 + 6) pixels (small tiles use scale 1).
        assert_eq!(sheet.dimensions(), (2 * 38, 2 * 57));
        // The first tile is class 4 (order kept), the second class 0.
        assert_eq!(sheet.get_pixel(PADDING + 5, PADDING + 5), &Rgb([200, 200, 200]));
        assert_eq!(sheet.get_pixel(38 + PADDING + 5, PADDING + 5), &Rgb([0, 0, 0]));
        // The labels are inked.
        let label_band = (0..38).flat_map(|x| (38..57).map(move |y| (x, y)));
        assert!(label_band.filter(|&(x, y)| sheet.get_pixel(x, y) == &INK).count() > 10);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
