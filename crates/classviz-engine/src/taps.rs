//! A model's taps, resolved: a name becomes a [`TapRef`] once (with a typed
//! error naming the model's taps), and the defaults of class activation maps
//! and of units' comparisons are chosen here and only here.

use std::fmt;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};

use crate::model::ModelInfo;
use crate::network::TapId;
use classviz_records::sidecar::{Tap, EXPORTER};

/// A tap resolved against the model: its id, and its name for reports and
/// file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapRef {
    pub id: TapId,
    pub name: String,
}

/// A model without taps asked for one: what needed it, and how to export one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoTaps {
    pub model: PathBuf,
    /// Why a tap was needed, as a clause: "class activation maps are taken at a tap".
    pub needed_by: String,
}

impl fmt::Display for NoTaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, and {} has no taps: export one with `{EXPORTER} MODEL --taps NAME,…` (see --list-taps)",
            self.needed_by,
            self.model.display()
        )
    }
}

impl std::error::Error for NoTaps {}

impl ModelInfo {
    /// The tap named `name`, or an error listing the model's taps.
    pub fn tap(&self, name: &str) -> Result<TapRef> {
        let taps = &self.taps;
        if taps.is_empty() {
            return Err(self.no_taps(format!("tap {name} was asked for")).into());
        }
        let index = taps.iter().position(|tap| tap.name == name).ok_or_else(|| {
            anyhow!(
                "unknown tap {name}; {} has taps {}",
                self.path.display(),
                taps.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        })?;
        Ok(TapRef { id: TapId::at(index), name: name.to_string() })
    }

    /// What the sidecar says of a tap.
    pub fn tap_info(&self, tap: TapId) -> &Tap {
        &self.taps[tap.index()]
    }

    /// The error for `needed_by` on a model without taps.
    pub fn no_taps(&self, needed_by: impl Into<String>) -> NoTaps {
        NoTaps { model: self.path.clone(), needed_by: needed_by.into() }
    }

    /// The taps class activation maps can be taken at, last first: those with
    /// a spatial grid (more than one position), where the features are the
    /// most semantic that still have a place. The default is the first of
    /// them whose class-score gradient is not zero at the photo
    /// (`attribution::cam::default_tap`).
    pub fn cam_taps(&self) -> Result<Vec<TapRef>> {
        if self.taps.is_empty() {
            return Err(self.no_taps("class activation maps are taken at a tap").into());
        }
        let mut spatial = self.taps_where(|tap| tap.grid_shape().is_ok_and(|[_, h, w]| h * w > 1));
        spatial.reverse();
        if spatial.is_empty() {
            bail!(
                "{} has no grid tap with more than one position (its taps are 1×1 or attention probabilities)",
                self.path.display()
            );
        }
        Ok(spatial)
    }

    /// The default tap of units' comparisons (the facets' diversity): the
    /// middle one of the grid taps, between textures and parts.
    pub fn default_unit_tap(&self, needed_by: &str) -> Result<TapRef> {
        let mut grids = self.taps_where(|tap| !tap.is_attention());
        if grids.is_empty() {
            return Err(self.no_taps(needed_by).into());
        }
        Ok(grids.swap_remove(grids.len() / 2))
    }

    /// The model's attention taps, first block first: what attention rollout
    /// multiplies through. A model exported without them is refused.
    pub fn attention_taps(&self, needed_by: &str) -> Result<Vec<TapRef>> {
        let taps = self.taps_where(Tap::is_attention);
        if taps.is_empty() {
            bail!(
                "{needed_by} multiplies a transformer's attention probabilities through its blocks, and {} returns none: export it with `{EXPORTER} … --attention` (ViTs of torchvision, timm and Hugging Face)",
                self.path.display()
            );
        }
        Ok(taps)
    }

    /// The taps that pass `keep`, in the sidecar's order.
    fn taps_where(&self, keep: impl Fn(&Tap) -> bool) -> Vec<TapRef> {
        self.taps
            .iter()
            .enumerate()
            .filter(|(_, tap)| keep(tap))
            .map(|(i, tap)| TapRef { id: TapId::at(i), name: tap.name.clone() })
            .collect()
    }
}
