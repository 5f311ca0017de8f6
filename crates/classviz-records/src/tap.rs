//! What a sidecar says of a tap: the module's name, the grid `[C, H, W]`
//! classviz sees, and the module's own layout (channels first or last, or
//! tokens with their prefix), for reports and the older token exports; or a
//! self-attention's probabilities `[heads, T, T]` over such tokens.

use std::fmt;

use anyhow::{bail, Result};
use serde::Deserialize;

/// An intermediate activation a tapped model returns.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Tap {
    /// The module's name (`named_modules()`), also its key in the output dict.
    pub name: String,
    /// What the model returns at the sidecar's input size: a grid `[C, H, W]`
    /// (the exporter lays every module's output out so), or, from older
    /// exports, a transformer's tokens `[T, C]` (a class token and a square
    /// grid of patches).
    pub shape: Vec<i64>,
    /// The module's own layout, before the export made it a grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<TapLayout>,
    /// The module's own output shape (without the batch), in its layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_shape: Option<Vec<i64>>,
    /// Tokens before the patch grid (class, distillation, registers), for a
    /// `tokens` or `attention` layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_tokens: Option<u32>,
    /// The patch grid `[h, w]` of an `attention` tap's tokens, row by row
    /// after the prefix tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<[i64; 2]>,
    /// Which tokens an `attention` tap's model reads its class from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readout: Option<Readout>,
}

/// How a transformer's head reads its tokens.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Readout {
    /// The first prefix token (a class token).
    Token,
    /// The mean of the patch tokens.
    Mean,
}

/// How a tapped module lays out its output; the export returns every tap as
/// a grid `[N, C, H, W]` whatever it is.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TapLayout {
    /// Channels first, `[N, C, H, W]`: convolutional networks.
    Nchw,
    /// Channels last, `[N, H, W, C]`: Swin's stages, ConvNeXt's blocks.
    Nhwc,
    /// `[N, T, C]`: prefix tokens, then the patch grid row by row.
    Tokens,
    /// `[N, heads, T, T]`: a self-attention's probabilities over such tokens,
    /// returned as they are (each row sums to one).
    Attention,
}

impl fmt::Display for TapLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TapLayout::Nchw => "channels first",
            TapLayout::Nhwc => "channels last",
            TapLayout::Tokens => "tokens",
            TapLayout::Attention => "attention",
        })
    }
}

impl Tap {
    /// A channels-first tap of `shape` `[C, H, W]`.
    pub fn grid(name: &str, shape: [i64; 3]) -> Tap {
        Tap {
            name: name.to_string(),
            shape: shape.to_vec(),
            layout: None,
            source_shape: None,
            prefix_tokens: None,
            grid: None,
            readout: None,
        }
    }

    /// Whether the tap holds attention probabilities rather than a grid.
    pub fn is_attention(&self) -> bool {
        self.layout == Some(TapLayout::Attention)
    }

    /// The shape the model returns per image: the grid `[C, H, W]`, or an
    /// attention tap's `[heads, T, T]`.
    pub fn output_shape(&self) -> Result<Vec<i64>> {
        if !self.is_attention() {
            return Ok(self.grid_shape()?.to_vec());
        }
        let [heads, rows, columns] = self.shape[..] else {
            bail!(
                "attention tap {} must have a [heads, T, T] shape, got {:?}",
                self.name,
                self.shape
            )
        };
        let [h, w] = self.grid.unwrap_or([0, 0]);
        let tokens = i64::from(self.prefix_tokens.unwrap_or(0)) + h * w;
        if heads < 1 || rows != columns || h < 1 || w < 1 || tokens != rows {
            bail!(
                "attention tap {} has shape {:?}, which is not [heads, T, T] over {} prefix tokens and a {h}x{w} patch grid",
                self.name,
                self.shape,
                self.prefix_tokens.unwrap_or(0)
            );
        }
        Ok(self.shape.clone())
    }

    /// The shape classviz sees, `[C, H, W]`: tokens `[T, C]` of an older
    /// export with T − 1 a square s² become a grid `[C, s, s]` (the class
    /// token dropped).
    pub fn grid_shape(&self) -> Result<[i64; 3]> {
        if self.is_attention() {
            bail!(
                "tap {} holds attention probabilities, not a grid of channels: units and class activation maps are taken at a grid tap; attention taps serve --method rollout and gradient-rollout",
                self.name
            );
        }
        match self.shape[..] {
            [c, h, w] => Ok([c, h, w]),
            [tokens, c] if self.layout.is_none() => match token_grid_side(tokens) {
                Some(side) => Ok([c, side, side]),
                None => bail!(
                    "tap {} has {tokens} tokens: a grid needs one class token and a square number of patches; export the model again (the exporter lays any tokens out as a grid)",
                    self.name
                ),
            },
            _ => bail!("tap {} must have a [C, H, W] shape, got {:?}", self.name, self.shape),
        }
    }

    /// Whether the model returns the tap as tokens (an older export), which
    /// classviz reshapes to a grid.
    pub fn is_tokens(&self) -> bool {
        self.shape.len() == 2
    }

    /// What the module returned and how it became a grid, for reports.
    pub fn describe(&self) -> String {
        let shape = |dims: &[i64]| dims.iter().map(i64::to_string).collect::<Vec<_>>().join("x");
        let grid = self.grid_shape().map(|g| shape(&g)).unwrap_or_else(|_| shape(&self.shape));
        let source = self.source_shape.as_deref().map(shape);
        match (self.layout, source) {
            (Some(TapLayout::Tokens), Some(source)) => format!(
                "{} {grid} (tokens {source}, {} prefix)",
                self.name,
                self.prefix_tokens.unwrap_or(0)
            ),
            (Some(TapLayout::Attention), _) => format!(
                "{} attention {} ({} prefix, {} grid)",
                self.name,
                shape(&self.shape),
                self.prefix_tokens.unwrap_or(0),
                shape(&self.grid.unwrap_or([0, 0]))
            ),
            (Some(TapLayout::Nhwc), Some(source)) => {
                format!("{} {grid} (channels last {source})", self.name)
            }
            _ if self.is_tokens() => format!(
                "{} {} tokens (seen as a {grid} grid, class token dropped)",
                self.name,
                shape(&self.shape)
            ),
            _ => format!("{} {grid}", self.name),
        }
    }
}

/// The side s of the patch grid of `tokens` tokens (one class token and s² patches).
pub fn token_grid_side(tokens: i64) -> Option<i64> {
    let patches = tokens - 1;
    let side = (patches.max(0) as f64).sqrt().round() as i64;
    (side > 0 && side * side == patches).then_some(side)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_taps_become_grids() {
        let tap = Tap { shape: vec![197, 768], ..Tap::grid("blocks.11", [1, 1, 1]) };
        assert_eq!(tap.grid_shape().unwrap(), [768, 14, 14]);
        assert!(tap.is_tokens());
        assert_eq!(token_grid_side(50), Some(7));
        assert_eq!(token_grid_side(10), Some(3));
        assert_eq!(token_grid_side(11), None);
        let image = Tap::grid("x", [16, 7, 7]);
        assert_eq!(image.grid_shape().unwrap(), [16, 7, 7]);
    }

    #[test]
    fn attention_taps_are_no_grid_and_must_cover_the_tokens() {
        let attention = Tap {
            shape: vec![4, 65, 65],
            layout: Some(TapLayout::Attention),
            prefix_tokens: Some(1),
            grid: Some([8, 8]),
            readout: Some(Readout::Token),
            ..Tap::grid("blocks.0.attn", [1, 1, 1])
        };
        assert_eq!(attention.output_shape().unwrap(), vec![4, 65, 65]);
        let refused = attention.grid_shape().unwrap_err().to_string();
        assert!(
            refused.contains("attention probabilities") && refused.contains("rollout"),
            "{refused}"
        );
        let short = Tap { grid: Some([7, 8]), ..attention.clone() };
        assert!(short.output_shape().is_err());
        assert_eq!(Tap::grid("x", [3, 2, 2]).output_shape().unwrap(), vec![3, 2, 2]);
    }
}
