//! Value parsers: numbers checked as they are parsed (a bad value names its
//! flag and exits 2), the choices of `classviz_records::choice`, and the
//! syntax of `--objective`.

use std::fmt;
use std::str::FromStr;

use clap::builder::TypedValueParser;
use classviz_core::ascent::InitSpec;
use classviz_core::objective::ClassScore;
use classviz_engine::model::{self, DeviceChoice};
use classviz_records::choice::Choice;
use classviz_records::input::{ChannelValues, InputSize};
use classviz_records::shard::ShardSpec;

/// Views per step, at most (each is a full forward and backward image).
const MAX_VIEWS: u32 = 64;
/// Facets per target, at most.
const MAX_FACETS: u32 = 16;

/// What `--objective` maximises, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectiveKind {
    /// A class's score (`--class`).
    Class(ClassScore),
    Channel,
    Neuron,
    Layer,
}

impl Default for ObjectiveKind {
    fn default() -> Self {
        ObjectiveKind::Class(ClassScore::default())
    }
}

/// `--objective` as written: the kind, the tap a unit objective reads, and the
/// channel of `channel:TAP:K` and `neuron:TAP:K`. The plan resolves the tap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectiveFlag {
    pub kind: ObjectiveKind,
    pub tap: Option<String>,
    pub unit: Option<i64>,
}

impl ObjectiveFlag {
    /// Whether it shows a unit of a tap (not a class).
    pub fn is_unit(&self) -> bool {
        self.tap.is_some()
    }
}

impl FromStr for ObjectiveFlag {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(score) = ClassScore::parse(text) {
            return Ok(ObjectiveFlag { kind: ObjectiveKind::Class(score), tap: None, unit: None });
        }
        let (kind, rest) = text.split_once(':').ok_or_else(|| {
            let scores: Vec<&str> = ClassScore::ALL.iter().map(|s| s.name()).collect();
            format!(
                "'{text}' is not {}, channel:TAP[:K], neuron:TAP[:K] or layer:TAP",
                scores.join(", ")
            )
        })?;
        let kind = match kind {
            "channel" => ObjectiveKind::Channel,
            "neuron" => ObjectiveKind::Neuron,
            "layer" => ObjectiveKind::Layer,
            _ => return Err(format!("'{kind}' in '{text}' is not channel, neuron or layer")),
        };
        let (tap, unit) =
            match (kind, rest.rsplit_once(':')) {
                (ObjectiveKind::Layer, _) | (_, None) => (rest, None),
                (_, Some((tap, unit))) => {
                    let unit =
                        unit.trim().parse::<i64>().ok().filter(|u| *u >= 0).ok_or_else(|| {
                            format!("'{unit}' in '{text}' is not a channel number")
                        })?;
                    (tap, Some(unit))
                }
            };
        if tap.trim().is_empty() {
            return Err(format!("'{text}' names no tap"));
        }
        Ok(ObjectiveFlag { kind, tap: Some(tap.trim().to_string()), unit })
    }
}

impl fmt::Display for ObjectiveFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tap = self.tap.as_deref().unwrap_or_default();
        match self.kind {
            ObjectiveKind::Class(score) => write!(f, "{score}"),
            ObjectiveKind::Channel => write!(f, "channel:{tap}"),
            ObjectiveKind::Neuron => write!(f, "neuron:{tap}"),
            ObjectiveKind::Layer => write!(f, "layer:{tap}"),
        }
    }
}

pub fn parse_positive_u32(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{text}' is not a positive whole number")),
    }
}

pub fn parse_positive_usize(text: &str) -> Result<usize, String> {
    parse_positive_u32(text).map(|n| n as usize)
}

pub fn parse_threads(text: &str) -> Result<usize, String> {
    match parse_positive_usize(text)? {
        n if n <= model::MAX_THREADS => Ok(n),
        n => Err(format!("{n} threads is more than {}", model::MAX_THREADS)),
    }
}

pub fn parse_percentile(text: &str) -> Result<f64, String> {
    match parse_non_negative_f64(text)? {
        p if p <= 100.0 => Ok(p),
        p => Err(format!("a percentile is 0 to 100, got {p}")),
    }
}

/// A fraction: 0 to 1.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    match parse_non_negative_f64(text)? {
        f if f <= 1.0 => Ok(f),
        f => Err(format!("a fraction is 0 to 1, got {f}")),
    }
}

/// Views per step: 1 to 64 (each is a full forward and backward image).
pub fn parse_views(text: &str) -> Result<u32, String> {
    match parse_positive_u32(text)? {
        n if n <= MAX_VIEWS => Ok(n),
        n => Err(format!("{n} views is more than {MAX_VIEWS}")),
    }
}

pub fn parse_canvas(text: &str) -> Result<f64, String> {
    match parse_finite(text)? {
        x if (1.0..=8.0).contains(&x) => Ok(x),
        x => Err(format!("the canvas is 1 to 8 times the input side, got {x}")),
    }
}

/// `LOW..HIGH`, two fractions with 0 < LOW ≤ HIGH ≤ 1.
pub fn parse_crop_box(text: &str) -> Result<(f64, f64), String> {
    let (low, high) = text
        .split_once("..")
        .ok_or_else(|| format!("'{text}' is not LOW..HIGH (e.g. 0.2..0.5)"))?;
    let (low, high) = (parse_finite(low)?, parse_finite(high)?);
    if low > 0.0 && low <= high && high <= 1.0 {
        Ok((low, high))
    } else {
        Err(format!("need 0 < LOW ≤ HIGH ≤ 1, got {low}..{high}"))
    }
}

/// A scale list (`0.9,1,1.1`) or range (`0.8..1.2`); every scale positive.
pub fn parse_scales(text: &str) -> Result<ChannelValues, String> {
    let values = match text.split_once("..") {
        Some((low, high)) => {
            let (low, high) = (parse_positive_f64(low)?, parse_positive_f64(high)?);
            if low > high {
                return Err(format!("the range {low}..{high} is empty"));
            }
            classviz_core::views::scale_range(low, high)
        }
        None => text.split(',').map(parse_positive_f64).collect::<Result<Vec<_>, _>>()?,
    };
    Ok(ChannelValues(values))
}

/// 1 to 256 random orders (each costs 42 forward passes).
pub fn parse_random_orders(text: &str) -> Result<u32, String> {
    match parse_positive_u32(text)? {
        n if n <= 256 => Ok(n),
        n => Err(format!("{n} random orders is more than 256")),
    }
}

pub fn parse_init(text: &str) -> Result<InitSpec, String> {
    text.parse()
}

/// A class list must name something; what it names is checked against the model's labels.
pub fn parse_class_list(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("the class list is empty: give indices, names, ranges or all".into())
    } else {
        Ok(text.to_string())
    }
}

pub fn parse_finite(text: &str) -> Result<f64, String> {
    let value: f64 = text.trim().parse().map_err(|_| format!("'{text}' is not a number"))?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("'{text}' is not a finite number"))
    }
}

pub fn parse_positive_f64(text: &str) -> Result<f64, String> {
    let value = parse_finite(text)?;
    if value > 0.0 {
        Ok(value)
    } else {
        Err(format!("must be greater than 0, got {value}"))
    }
}

pub fn parse_non_negative_f64(text: &str) -> Result<f64, String> {
    let value = parse_finite(text)?;
    if value >= 0.0 {
        Ok(value)
    } else {
        Err(format!("must be 0 or more, got {value}"))
    }
}

pub fn parse_channel_values(text: &str) -> Result<ChannelValues, String> {
    let values = text.split(',').map(parse_finite).collect::<Result<Vec<_>, _>>()?;
    Ok(ChannelValues(values))
}

pub fn parse_positive_channel_values(text: &str) -> Result<ChannelValues, String> {
    let values = text.split(',').map(parse_positive_f64).collect::<Result<Vec<_>, _>>()?;
    Ok(ChannelValues(values))
}

pub fn parse_size(text: &str) -> Result<InputSize, String> {
    let parts = text
        .split(',')
        .map(|part| parse_positive_u32(part).map(i64::from))
        .collect::<Result<Vec<_>, _>>()?;
    match parts[..] {
        [side] => Ok(InputSize { height: side, width: side }),
        [height, width] => Ok(InputSize { height, width }),
        _ => Err(format!("'{text}' is not S or H,W")),
    }
}

pub fn parse_device(text: &str) -> Result<DeviceChoice, String> {
    text.parse()
}

pub fn parse_objective(text: &str) -> Result<ObjectiveFlag, String> {
    text.parse()
}

pub fn parse_facets(text: &str) -> Result<u32, String> {
    match parse_positive_u32(text)? {
        1 => Err("one facet is a plain run: give 2 or more".into()),
        n if n <= MAX_FACETS => Ok(n),
        n => Err(format!("{n} facets is more than {MAX_FACETS}")),
    }
}

pub fn parse_shard(text: &str) -> Result<ShardSpec, String> {
    text.parse()
}

/// A value parser for a [`Choice`]: its names (and aliases) with a line of
/// help each, listed by `--help` and by the error for a bad value.
pub fn choice<T: Choice + Clone>() -> impl clap::builder::TypedValueParser<Value = T> {
    let values = T::ALL.iter().map(|choice| {
        clap::builder::PossibleValue::new(choice.name())
            .help(choice.help().trim())
            .aliases(choice.aliases().iter().copied())
    });
    clap::builder::PossibleValuesParser::new(values)
        .map(|name| T::parse(&name).expect("clap checked the value against the names"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives_parse() {
        let parse = |text: &str| text.parse::<ObjectiveFlag>();
        assert_eq!(parse("logit").unwrap().kind, ObjectiveKind::Class(ClassScore::Logit));
        assert_eq!(parse("LOG-PROB").unwrap().kind, ObjectiveKind::Class(ClassScore::LogProb));
        assert_eq!(
            parse("channel:_blocks.3:5").unwrap(),
            ObjectiveFlag {
                kind: ObjectiveKind::Channel,
                tap: Some("_blocks.3".into()),
                unit: Some(5)
            }
        );
        assert_eq!(
            parse("neuron:features").unwrap(),
            ObjectiveFlag { kind: ObjectiveKind::Neuron, tap: Some("features".into()), unit: None }
        );
        assert_eq!(parse("layer:a.b").unwrap().to_string(), "layer:a.b");
        for bad in ["channel:", "channel:x:-1", "channel:x:y", "pixel:x", "", "dream"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
