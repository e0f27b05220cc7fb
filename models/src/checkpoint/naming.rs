//! The three public MobileOne checkpoint naming schemes (Apple ml-mobileone, timm, mmpretrain)
//! and the mapping between each and our canonical names, which are Apple's. Each scheme is a
//! table of prefix rewrites in which `#` stands for a number, so one table serves both ways.

use std::fmt;
use std::str::FromStr;

use crate::model::UnknownName;

/// A checkpoint naming scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Naming {
    /// Apple's ml-mobileone: `stage1.0.rbr_conv.0.conv.weight`. Our canonical naming.
    Apple,
    /// timm's byobnet: `stages.0.0.conv_kxk.0.conv.weight`.
    Timm,
    /// mmpretrain: `backbone.stage1.0.branch_conv_list.0.conv.weight`.
    Mmpretrain,
}

impl Naming {
    pub const ALL: [Naming; 3] = [Naming::Apple, Naming::Timm, Naming::Mmpretrain];

    pub fn name(self) -> &'static str {
        match self {
            Naming::Apple => "apple",
            Naming::Timm => "timm",
            Naming::Mmpretrain => "mmpretrain",
        }
    }

    /// (canonical, scheme, offset added to the first number going canonical -> scheme).
    fn block_prefixes(self) -> &'static [(&'static str, &'static str, i64)] {
        match self {
            Naming::Apple => &[("stage0.", "stage0.", 0), ("stage#.#.", "stage#.#.", 0)],
            Naming::Timm => &[("stage0.", "stem.", 0), ("stage#.#.", "stages.#.#.", -1)],
            Naming::Mmpretrain => &[
                ("stage0.", "backbone.stage0.", 0),
                ("stage#.#.", "backbone.stage#.#.", 0),
            ],
        }
    }

    /// (canonical, scheme) rewrites of what follows the block prefix.
    fn parts(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Naming::Apple => &[
                ("rbr_conv.#.conv.", "rbr_conv.#.conv."),
                ("rbr_conv.#.bn.", "rbr_conv.#.bn."),
                ("rbr_scale.conv.", "rbr_scale.conv."),
                ("rbr_scale.bn.", "rbr_scale.bn."),
                ("rbr_skip.", "rbr_skip."),
                ("se.reduce.", "se.reduce."),
                ("se.expand.", "se.expand."),
                ("reparam_conv.", "reparam_conv."),
            ],
            Naming::Timm => &[
                ("rbr_conv.#.conv.", "conv_kxk.#.conv."),
                ("rbr_conv.#.bn.", "conv_kxk.#.bn."),
                ("rbr_scale.conv.", "conv_scale.conv."),
                ("rbr_scale.bn.", "conv_scale.bn."),
                ("rbr_skip.", "identity."),
                ("se.reduce.", "attn.fc1."),
                ("se.expand.", "attn.fc2."),
                ("reparam_conv.", "reparam_conv."),
            ],
            Naming::Mmpretrain => &[
                ("rbr_conv.#.conv.", "branch_conv_list.#.conv."),
                ("rbr_conv.#.bn.", "branch_conv_list.#.norm."),
                ("rbr_scale.conv.", "branch_scale.conv."),
                ("rbr_scale.bn.", "branch_scale.norm."),
                ("rbr_skip.", "branch_norm."),
                ("se.reduce.", "se.conv1.conv."),
                ("se.expand.", "se.conv2.conv."),
                ("reparam_conv.", "branch_reparam."),
            ],
        }
    }

    fn head(self) -> &'static str {
        match self {
            Naming::Apple => "linear.",
            Naming::Timm | Naming::Mmpretrain => "head.fc.",
        }
    }

    /// The canonical name of a tensor named `name` in this scheme, if it is one of its names.
    /// A `backbone.` prefix is accepted on every scheme (and may be absent on mmpretrain's).
    pub fn to_canonical(self, name: &str) -> Option<String> {
        let mut candidates = vec![name.to_string()];
        if let Some(stripped) = name.strip_prefix("backbone.") {
            candidates.push(stripped.to_string());
        }
        if self == Naming::Mmpretrain && !name.starts_with("backbone.") {
            candidates.push(format!("backbone.{name}"));
        }
        candidates
            .iter()
            .find_map(|c| translate(self, c, Direction::ToCanonical))
    }

    /// The name this scheme gives a canonical tensor name.
    pub fn from_canonical(self, canonical: &str) -> Option<String> {
        translate(self, canonical, Direction::FromCanonical)
    }
}

impl fmt::Display for Naming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Naming {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Naming::ALL
            .into_iter()
            .find(|n| n.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| UnknownName {
                what: "naming scheme",
                found: s.to_string(),
                allowed: "apple, timm, mmpretrain".into(),
            })
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    ToCanonical,
    FromCanonical,
}

fn translate(naming: Naming, name: &str, direction: Direction) -> Option<String> {
    let pick = |canonical: &'static str, scheme: &'static str| match direction {
        Direction::ToCanonical => (scheme, canonical),
        Direction::FromCanonical => (canonical, scheme),
    };
    let (from_head, to_head) = pick("linear.", naming.head());
    if let Some(tail) = name.strip_prefix(from_head) {
        return matches!(tail, "weight" | "bias").then(|| format!("{to_head}{tail}"));
    }
    let (prefix, rest) = naming.block_prefixes().iter().find_map(|&(c, s, offset)| {
        let (from, to) = pick(c, s);
        let offset = if direction == Direction::ToCanonical {
            -offset
        } else {
            offset
        };
        let (mut numbers, rest) = match_pattern(from, name)?;
        if let Some(first) = numbers.first_mut() {
            *first = first.checked_add_signed(offset)?;
        }
        Some((fill_pattern(to, &numbers), rest))
    })?;
    let (part, tail) = naming.parts().iter().find_map(|&(c, s)| {
        let (from, to) = pick(c, s);
        let (numbers, tail) = match_pattern(from, rest)?;
        Some((fill_pattern(to, &numbers), tail))
    })?;
    if tail.is_empty() || tail.contains('.') {
        return None;
    }
    Some(format!("{prefix}{part}{tail}"))
}

/// Matches `pattern` (with `#` for a decimal number) at the start of `s`: the numbers and the rest.
fn match_pattern<'a>(pattern: &str, s: &'a str) -> Option<(Vec<u64>, &'a str)> {
    let mut numbers = Vec::new();
    let mut rest = s;
    for (i, literal) in pattern.split('#').enumerate() {
        if i > 0 {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            numbers.push(rest[..digits].parse().ok()?);
            rest = &rest[digits..];
        }
        rest = rest.strip_prefix(literal)?;
    }
    Some((numbers, rest))
}

fn fill_pattern(pattern: &str, numbers: &[u64]) -> String {
    let mut out = String::new();
    for (i, literal) in pattern.split('#').enumerate() {
        if i > 0 {
            out.push_str(&numbers[i - 1].to_string());
        }
        out.push_str(literal);
    }
    out
}

/// The scheme that recognizes the most of these names, and how many it recognizes.
/// Ties go to the first in `Naming::ALL` order: they happen only when every name is a head name,
/// which timm and mmpretrain spell alike.
pub fn detect<'a>(names: impl Iterator<Item = &'a str> + Clone) -> (Naming, usize) {
    Naming::ALL
        .into_iter()
        .map(|n| {
            (
                n,
                names
                    .clone()
                    .filter(|k| n.to_canonical(k).is_some())
                    .count(),
            )
        })
        .fold(
            (Naming::Apple, 0),
            |best, cur| if cur.1 > best.1 { cur } else { best },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scheme_maps_both_ways() {
        let cases = [
            (
                "stage1.0.rbr_conv.3.bn.running_var",
                Naming::Timm,
                "stages.0.0.conv_kxk.3.bn.running_var",
            ),
            (
                "stage0.rbr_scale.conv.weight",
                Naming::Timm,
                "stem.conv_scale.conv.weight",
            ),
            (
                "stage4.1.se.expand.bias",
                Naming::Timm,
                "stages.3.1.attn.fc2.bias",
            ),
            ("linear.weight", Naming::Timm, "head.fc.weight"),
            (
                "stage2.13.rbr_skip.weight",
                Naming::Mmpretrain,
                "backbone.stage2.13.branch_norm.weight",
            ),
            (
                "stage1.0.rbr_conv.0.bn.bias",
                Naming::Mmpretrain,
                "backbone.stage1.0.branch_conv_list.0.norm.bias",
            ),
            (
                "stage3.12.se.reduce.weight",
                Naming::Mmpretrain,
                "backbone.stage3.12.se.conv1.conv.weight",
            ),
            (
                "stage3.12.reparam_conv.bias",
                Naming::Mmpretrain,
                "backbone.stage3.12.branch_reparam.bias",
            ),
            (
                "stage3.12.reparam_conv.bias",
                Naming::Apple,
                "stage3.12.reparam_conv.bias",
            ),
        ];
        for (canonical, naming, scheme) in cases {
            assert_eq!(
                naming.from_canonical(canonical).as_deref(),
                Some(scheme),
                "{naming}"
            );
            assert_eq!(
                naming.to_canonical(scheme).as_deref(),
                Some(canonical),
                "{naming}"
            );
        }
    }

    #[test]
    fn foreign_names_are_not_recognized() {
        assert_eq!(
            Naming::Apple.to_canonical("stages.0.0.conv_kxk.0.conv.weight"),
            None
        );
        assert_eq!(
            Naming::Timm.to_canonical("stage1.0.rbr_conv.0.conv.weight"),
            None
        );
        assert_eq!(
            Naming::Apple.to_canonical("stage1.0.rbr_conv.0.conv.weight.extra"),
            None
        );
        assert_eq!(Naming::Apple.to_canonical("linear.running_mean"), None);
        // timm has no stage index -1.
        assert_eq!(
            Naming::Timm.from_canonical("stage0.5.rbr_skip.weight"),
            None
        );
    }

    #[test]
    fn backbone_prefix_is_optional() {
        assert_eq!(
            Naming::Apple
                .to_canonical("backbone.stage1.0.rbr_skip.weight")
                .as_deref(),
            Some("stage1.0.rbr_skip.weight")
        );
        assert_eq!(
            Naming::Mmpretrain
                .to_canonical("stage1.0.branch_norm.weight")
                .as_deref(),
            Some("stage1.0.rbr_skip.weight")
        );
    }

    #[test]
    fn detect_picks_the_scheme_that_knows_the_names() {
        let names = [
            "stem.conv_kxk.0.conv.weight",
            "head.fc.weight",
            "stages.0.1.identity.bias",
        ];
        assert_eq!(detect(names.iter().copied()), (Naming::Timm, 3));
        let names = ["backbone.stage0.branch_reparam.weight", "head.fc.bias"];
        assert_eq!(detect(names.iter().copied()), (Naming::Mmpretrain, 2));
        assert_eq!(detect(["nothing.here"].iter().copied()).1, 0);
    }
}
