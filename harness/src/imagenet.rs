//! The ImageNet-1k (ILSVRC-2012) classes in the standard class-index order (WordNet ids
//! sorted), each with its WordNet lemmas, from `data/imagenet-1k-classes.tsv`.

const CLASSES_TSV: &str = include_str!("../data/imagenet-1k-classes.tsv");

/// One ImageNet-1k class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagenetClass {
    pub index: usize,
    /// WordNet synset id, e.g. `n01440764`.
    pub wnid: &'static str,
    /// The synset's lemmas, e.g. `tench, Tinca tinca` (two classes are both called `crane`:
    /// the bird and the machine; the wnid tells them apart).
    pub name: &'static str,
}

/// The 1000 classes, index = the logit's position.
pub fn classes() -> Vec<ImagenetClass> {
    CLASSES_TSV
        .lines()
        .enumerate()
        .map(|(index, line)| {
            let (wnid, name) = line.split_once('\t').unwrap_or((line, ""));
            ImagenetClass { index, wnid, name }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn there_are_1000_unique_classes_in_wordnet_id_order() {
        let classes = classes();
        assert_eq!(classes.len(), 1000);
        let wnids: HashSet<_> = classes.iter().map(|c| c.wnid).collect();
        assert_eq!(wnids.len(), 1000);
        let lines: HashSet<_> = CLASSES_TSV.lines().collect();
        assert_eq!(lines.len(), 1000);
        assert!(classes.windows(2).all(|w| w[0].wnid < w[1].wnid));
        assert!(classes
            .iter()
            .all(|c| c.wnid.len() == 9 && c.wnid.starts_with('n') && !c.name.is_empty()));
        assert_eq!(classes[0].name, "tench, Tinca tinca");
        assert_eq!(classes[94].name, "hummingbird");
        assert_eq!(
            classes[999].name,
            "toilet tissue, toilet paper, bathroom tissue"
        );
    }
}
