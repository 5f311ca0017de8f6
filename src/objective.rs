//! What an image maximises: a class score (the paper's pre-softmax S_c, or
//! its log-probability or probability), or a unit inside the network read
//! from a tap: one channel's mean activation, one neuron (a channel at the
//! centre), or a whole layer's mean squared activation (DeepDream). Also the
//! similarity of images' Gram matrices, which the facets' diversity penalty lowers.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use crate::model::Classifier;

/// `--objective`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Objective {
    /// The class score itself (pre-softmax), as in the paper.
    #[default]
    Logit,
    /// log p_c: log-softmax of the scores, or the log of a softmax-ended model's output.
    LogProb,
    /// p_c: softmax of the scores, or a softmax-ended model's output itself.
    Prob,
    /// The mean activation of a channel of a tap.
    Channel(String),
    /// A channel of a tap at the centre position.
    Neuron(String),
    /// The mean squared activation of a whole tap (DeepDream).
    Layer(String),
}

/// A parsed `--objective`: the objective and, for `channel:TAP:K` and
/// `neuron:TAP:K`, the unit K.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectiveSpec {
    pub objective: Objective,
    pub unit: Option<i64>,
}

impl FromStr for ObjectiveSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let plain = |objective| Ok(ObjectiveSpec { objective, unit: None });
        match text.to_ascii_lowercase().as_str() {
            "logit" => return plain(Objective::Logit),
            "log-prob" | "logprob" => return plain(Objective::LogProb),
            "prob" => return plain(Objective::Prob),
            _ => {}
        }
        let (kind, rest) = text.split_once(':').ok_or_else(|| {
            format!("'{text}' is not logit, log-prob, prob, channel:TAP[:K], neuron:TAP[:K] or layer:TAP")
        })?;
        let (tap, unit) =
            match (kind, rest.rsplit_once(':')) {
                ("layer", _) => (rest, None),
                (_, Some((tap, unit))) => {
                    let unit =
                        unit.trim().parse::<i64>().ok().filter(|u| *u >= 0).ok_or_else(|| {
                            format!("'{unit}' in '{text}' is not a channel number")
                        })?;
                    (tap, Some(unit))
                }
                (_, None) => (rest, None),
            };
        if tap.trim().is_empty() {
            return Err(format!("'{text}' names no tap"));
        }
        let tap = tap.trim().to_string();
        let objective = match kind {
            "channel" => Objective::Channel(tap),
            "neuron" => Objective::Neuron(tap),
            "layer" => Objective::Layer(tap),
            _ => return Err(format!("'{kind}' in '{text}' is not channel, neuron or layer")),
        };
        Ok(ObjectiveSpec { objective, unit })
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Objective::Logit => write!(f, "logit"),
            Objective::LogProb => write!(f, "log-prob"),
            Objective::Prob => write!(f, "prob"),
            Objective::Channel(tap) => write!(f, "channel:{tap}"),
            Objective::Neuron(tap) => write!(f, "neuron:{tap}"),
            Objective::Layer(tap) => write!(f, "layer:{tap}"),
        }
    }
}

impl Objective {
    /// The tap a unit objective reads, `None` for class objectives.
    pub fn tap(&self) -> Option<&str> {
        match self {
            Objective::Channel(tap) | Objective::Neuron(tap) | Objective::Layer(tap) => Some(tap),
            _ => None,
        }
    }

    /// Whether the images are of classes (scored with labels and top-5).
    pub fn is_class(&self) -> bool {
        self.tap().is_none()
    }

    /// An image's file stem for unit `index` of this objective (class
    /// objectives name files by class elsewhere): `<tap>_c<K>`, `<tap>_n<K>`, `<tap>_layer`.
    pub fn unit_stem(&self, index: i64) -> String {
        match self {
            Objective::Channel(tap) => format!("{tap}_c{index}"),
            Objective::Neuron(tap) => format!("{tap}_n{index}"),
            Objective::Layer(tap) => format!("{tap}_layer"),
            _ => index.to_string(),
        }
    }
}

/// The objective of each image `i` for its target `indices[i]` (a class, or a
/// channel of the tap), and with `extra` the activations of that tap too
/// (from the same forward pass): `([N], Option<[N, C, H, W]>)`.
pub fn scores(
    model: &Classifier,
    x: &Tensor,
    objective: &Objective,
    indices: &Tensor,
    extra: Option<&str>,
) -> Result<(Tensor, Option<Tensor>)> {
    // The objective's tap and the extra one may be the same: read it once;
    // the extra activations are then the last tap read.
    let wants_extra = extra.is_some();
    let distinct = extra.filter(|name| Some(*name) != objective.tap());
    let wanted: Vec<&str> = objective.tap().into_iter().chain(distinct).collect();
    let (logits, taps) = model.forward_with_taps(x, &wanted)?;
    let extra_activations = if wants_extra { taps.last().map(Tensor::shallow_clone) } else { None };
    let targets = indices.f_view([-1, 1])?;
    let per_row = match objective {
        Objective::Logit | Objective::LogProb | Objective::Prob => {
            class_objective(&logits, &targets, objective, model.outputs_probabilities)?
        }
        Objective::Channel(_) => taps[0]
            .f_to_kind(Kind::Float)?
            .f_mean_dim([2, 3].as_slice(), false, Kind::Float)?
            .f_gather(1, &targets, false)?
            .f_view(-1)?,
        Objective::Neuron(_) => {
            let size = taps[0].size();
            taps[0]
                .f_to_kind(Kind::Float)?
                .f_select(2, size[2] / 2)?
                .f_select(2, size[3] / 2)?
                .f_gather(1, &targets, false)?
                .f_view(-1)?
        }
        Objective::Layer(_) => taps[0].f_to_kind(Kind::Float)?.f_square()?.f_mean_dim(
            [1, 2, 3].as_slice(),
            false,
            Kind::Float,
        )?,
    };
    Ok((per_row, extra_activations))
}

/// A class objective from the scores `[N, classes]` for each image's target
/// class (`targets`, `[N, 1]`): `[N]`. A softmax-ended model's outputs are
/// probabilities already.
fn class_objective(
    outputs: &Tensor,
    targets: &Tensor,
    objective: &Objective,
    outputs_probabilities: bool,
) -> Result<Tensor> {
    let outputs = outputs.f_to_kind(Kind::Float)?;
    let per_class = match (objective, outputs_probabilities) {
        (Objective::LogProb, false) => outputs.f_log_softmax(-1, Kind::Float)?,
        (Objective::LogProb, true) => outputs.f_clamp_min(f64::from(f32::MIN_POSITIVE))?.f_log()?,
        (Objective::Prob, false) => outputs.f_softmax(-1, Kind::Float)?,
        _ => outputs,
    };
    Ok(per_class.f_gather(1, targets, false)?.f_view(-1)?)
}

/// For activations `[G·F, C, H, W]` in G groups of F consecutive images: the
/// mean pairwise cosine similarity of the images' Gram matrices (C × C
/// channel correlations) within each group, `[G]`. 1 means the same style of
/// features, lower means more diverse (Lucid's diversity objective).
pub fn gram_similarity(activations: &Tensor, group: i64) -> Result<Tensor> {
    let size = activations.size();
    let (n, c) = (size[0], size[1]);
    if group < 2 || n % group != 0 {
        bail!("{n} images do not split into groups of {group} facets");
    }
    let flat = activations.f_to_kind(Kind::Float)?.f_reshape([n, c, -1])?;
    let gram = flat.f_matmul(&flat.f_transpose(1, 2)?)?.f_reshape([n, -1])?;
    let unit =
        gram.f_div(&gram.f_norm_scalaropt_dim(2, [1].as_slice(), true)?.f_clamp_min(1e-12)?)?;
    let grouped = unit.f_reshape([n / group, group, -1])?;
    let cosines = grouped.f_matmul(&grouped.f_transpose(1, 2)?)?;
    // Mean over the off-diagonal pairs: (Σ all − Σ diagonal) / (F² − F).
    let total = cosines.f_sum_dim_intlist([1, 2].as_slice(), false, Kind::Float)?;
    let diagonal =
        cosines.f_diagonal(0, 1, 2)?.f_sum_dim_intlist([1].as_slice(), false, Kind::Float)?;
    Ok(total.f_sub(&diagonal)?.f_div_scalar((group * group - group) as f64)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn objectives_parse() {
        let parse = |text: &str| text.parse::<ObjectiveSpec>();
        assert_eq!(parse("logit").unwrap().objective, Objective::Logit);
        assert_eq!(parse("LOG-PROB").unwrap().objective, Objective::LogProb);
        assert_eq!(
            parse("channel:_blocks.3:5").unwrap(),
            ObjectiveSpec { objective: Objective::Channel("_blocks.3".into()), unit: Some(5) }
        );
        assert_eq!(
            parse("neuron:features").unwrap(),
            ObjectiveSpec { objective: Objective::Neuron("features".into()), unit: None }
        );
        assert_eq!(parse("layer:a.b").unwrap().objective, Objective::Layer("a.b".into()));
        for bad in ["channel:", "channel:x:-1", "channel:x:y", "pixel:x", "", "dream"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unit_file_stems() {
        assert_eq!(Objective::Channel("_blocks.3".into()).unit_stem(5), "_blocks.3_c5");
        assert_eq!(Objective::Neuron("t".into()).unit_stem(0), "t_n0");
        assert_eq!(Objective::Layer("t".into()).unit_stem(0), "t_layer");
    }

    #[test]
    fn gram_similarity_is_one_for_copies_and_lower_for_different_images() {
        let a = Tensor::randn([1, 4, 5, 5], (Kind::Float, Device::Cpu));
        let copies = Tensor::cat(&[&a, &a, &a], 0);
        let same = gram_similarity(&copies, 3).unwrap().double_value(&[0]);
        assert!((same - 1.0).abs() < 1e-5, "{same}");
        let channels = Tensor::zeros([2, 4, 5, 5], (Kind::Float, Device::Cpu));
        let _ = channels.get(0).get(0).fill_(1.0);
        let _ = channels.get(1).get(1).fill_(1.0);
        let orthogonal = gram_similarity(&channels, 2).unwrap().double_value(&[0]);
        assert!(orthogonal.abs() < 1e-6, "different channels: {orthogonal}");
        assert!(gram_similarity(&copies, 2).is_err());
    }
}
