//! Saliency maps drawn: values in [0, 1] on a perceptually uniform colour
//! map (viridis), blended over the photo with an optional box, and as raw
//! 16-bit samples.

use image::{Rgb, RgbImage};

use crate::pixels::Pixels;

/// Viridis, sampled at nine evenly spaced points (perceptually uniform).
const VIRIDIS: [[f64; 3]; 9] = [
    [68.0, 1.0, 84.0],
    [71.0, 44.0, 122.0],
    [59.0, 81.0, 139.0],
    [44.0, 113.0, 142.0],
    [33.0, 144.0, 141.0],
    [39.0, 173.0, 129.0],
    [92.0, 200.0, 99.0],
    [170.0, 220.0, 50.0],
    [253.0, 231.0, 37.0],
];

/// A value in [0,1] on the colour map.
pub fn colour(value: f64) -> Rgb<u8> {
    let position = value.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f64;
    let low = (position.floor() as usize).min(VIRIDIS.len() - 2);
    let t = position - low as f64;
    let mix = |c: usize| (VIRIDIS[low][c] * (1.0 - t) + VIRIDIS[low + 1][c] * t).round() as u8;
    Rgb([mix(0), mix(1), mix(2)])
}

/// Display scaling: this percentile of the map is shown at full strength.
/// Saliency maps are sparse; scaled by their maximum, almost every pixel
/// would look empty.
const DISPLAY_PERCENTILE: f64 = 99.0;

/// A map's values scaled to [0,1]: by their maximum (`percentile` = 100,
/// lossless order for the raw 16-bit map), or by a lower percentile and
/// clamped (display).
pub fn normalised(values: &[f64], percentile: f64) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((percentile / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    let top = sorted.get(rank).copied().unwrap_or(0.0);
    values.iter().map(|v| if top > 0.0 { (v / top).min(1.0) } else { 0.0 }).collect()
}

/// A map's values for display: full strength from the 99th percentile up.
pub fn for_display(values: &[f64]) -> Vec<f64> {
    normalised(values, DISPLAY_PERCENTILE)
}

/// The colour-mapped saliency map.
pub fn heatmap(values: &[f64], width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| colour(values[(y * width + x) as usize]))
}

/// Opacity of the colour map over the photo, for zero and for maximal saliency.
const OVERLAY_MIN_ALPHA: f64 = 0.2;
const OVERLAY_MAX_ALPHA: f64 = 0.85;

/// The map blended over the photo, with the box drawn if given.
pub fn overlay(photo: &Pixels, values: &[f64], bbox: Option<(u32, u32, u32, u32)>) -> RgbImage {
    let (width, height) = (photo.width, photo.height);
    let mut image = RgbImage::from_fn(width, height, |x, y| {
        let index = (y * width + x) as usize;
        let base: [f64; 3] = if photo.channels == 1 {
            [f64::from(photo.data[index]); 3]
        } else {
            [0, 1, 2].map(|c| f64::from(photo.data[index * 3 + c]))
        };
        let heat = colour(values[index]);
        // The map's own strength sets how much of the heat colour shows.
        let alpha = OVERLAY_MIN_ALPHA + (OVERLAY_MAX_ALPHA - OVERLAY_MIN_ALPHA) * values[index];
        Rgb([0, 1, 2].map(|c| (base[c] * (1.0 - alpha) + f64::from(heat[c]) * alpha).round() as u8))
    });
    if let Some((x0, y0, x1, y1)) = bbox {
        let red = Rgb([255, 32, 32]);
        for thickness in 0..2u32 {
            for x in x0..=x1 {
                for y in
                    [y0.saturating_add(thickness).min(height - 1), y1.saturating_sub(thickness)]
                {
                    image.put_pixel(x, y, red);
                }
            }
            for y in y0..=y1 {
                for x in [x0.saturating_add(thickness).min(width - 1), x1.saturating_sub(thickness)]
                {
                    image.put_pixel(x, y, red);
                }
            }
        }
    }
    image
}

/// The raw map as 16-bit grayscale samples (max → 65535).
pub fn to_u16(values: &[f64]) -> Vec<u16> {
    values.iter().map(|v| (v * 65535.0).round() as u16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_map_ends() {
        assert_eq!(colour(0.0), Rgb([68, 1, 84]));
        assert_eq!(colour(1.0), Rgb([253, 231, 37]));
        assert_eq!(colour(2.0), Rgb([253, 231, 37]));
    }

    #[test]
    fn display_values_saturate_at_the_percentile_and_raw_ones_keep_their_order() {
        let values: Vec<f64> = (0..=100).map(f64::from).collect();
        let shown = for_display(&values);
        assert_eq!((shown[0], shown[99], shown[100]), (0.0, 1.0, 1.0));
        let raw = normalised(&values, 100.0);
        assert!((raw[50] - 0.5).abs() < 1e-12);
        assert_eq!(to_u16(&raw)[100], 65535);
        assert!(normalised(&[0.0, 0.0], 100.0).iter().all(|&v| v == 0.0));
    }
}
