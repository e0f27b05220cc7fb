//! The graph passes every compiling engine shares, done once before an engine sees the graph
//! (as tract does): batch norms folded into the convs before them (in f64, rounded once), who
//! reads each value, which activation runs as its producer's epilogue, which Adds sum their
//! branches in place, and a best-fit buffer assignment over value lifetimes. Engines (native,
//! gpu) then only choose kernels and layouts for what they are handed.

use models::{
    batch_norm_affine, fold_batch_norm_weights, fold_batch_norms_graph, foldable_batch_norms,
    Graph, Node, Op, ValueId, Weights,
};

use crate::BackendError;

/// A graph after the shared passes, with what the engines need to know about it.
pub struct Lowered {
    pub graph: Graph,
    pub weights: Weights,
    backend: String,
    /// Per node, the original nodes it carries out, joined by `+` (a conv and its batch norm).
    labels: Vec<String>,
    /// Per value (the input first, then each node), the nodes that read it, in order.
    readers: Vec<Vec<usize>>,
    /// Per node, the activation node that runs as its epilogue.
    epilogue: Vec<Option<usize>>,
    /// Per node, whether it is an activation that runs as its producer's epilogue.
    in_epilogue: Vec<bool>,
    pub folded_batch_norms: usize,
}

/// Which producer can take which activation as its epilogue: the engine's kernels decide.
pub type EpilogueRule = fn(producer: &Op, activation: &Op) -> bool;

/// Index of a value in per-value tables: the graph input first, then each node.
pub fn value_index(v: ValueId) -> usize {
    match v {
        ValueId::Input => 0,
        ValueId::Node(i) => i + 1,
    }
}

impl Lowered {
    /// Runs the shared passes on `graph` with `weights` for `backend`, whose kernels can run
    /// an activation after a producer when `fuses` says so.
    pub fn new(
        graph: &Graph,
        weights: &Weights,
        backend: &str,
        fuses: EpilogueRule,
    ) -> Result<Self, BackendError> {
        let weights_error = |reason: String| BackendError::weights(backend, reason);
        let folded = fold_batch_norms_graph(graph, graph.name())
            .map_err(|e| weights_error(e.to_string()))?;
        let folded_weights = fold_batch_norm_weights(graph, weights, "weights")
            .map_err(|e| weights_error(e.to_string()))?;
        let labels = merged_labels(graph);
        let readers = readers(&folded);
        let epilogue = epilogues(&folded, &readers, fuses);
        let mut in_epilogue = vec![false; folded.nodes().len()];
        for &j in epilogue.iter().flatten() {
            in_epilogue[j] = true;
        }
        Ok(Self {
            folded_batch_norms: graph.nodes().len() - folded.nodes().len(),
            graph: folded,
            weights: folded_weights,
            backend: backend.into(),
            labels,
            readers,
            epilogue,
            in_epilogue,
        })
    }

    pub fn nodes(&self) -> &[Node] {
        self.graph.nodes()
    }

    /// The original nodes node `i` carries out, joined by `+`.
    pub fn label(&self, i: usize) -> &str {
        &self.labels[i]
    }

    /// The nodes that read value `v`, in order.
    pub fn readers(&self, v: ValueId) -> &[usize] {
        &self.readers[value_index(v)]
    }

    /// The activation node that runs as node `i`'s epilogue.
    pub fn epilogue(&self, i: usize) -> Option<usize> {
        self.epilogue[i]
    }

    /// Whether node `i` is an activation that its producer runs as an epilogue.
    pub fn in_epilogue(&self, i: usize) -> bool {
        self.in_epilogue[i]
    }

    /// Whether Add node `i` can sum its inputs in place: each is read only by it, once, and
    /// made by a kernel that can add into its output (a conv or a batch norm).
    pub fn sums_in_place(&self, i: usize) -> bool {
        let nodes = self.nodes();
        let node = &nodes[i];
        node.op == Op::Add
            && node.inputs.iter().all(|&v| match v {
                ValueId::Node(p) => {
                    self.readers[p + 1] == [i]
                        && matches!(nodes[p].op, Op::Conv2d(_) | Op::BatchNorm(_))
                        && node.inputs.iter().filter(|&&u| u == v).count() == 1
                }
                ValueId::Input => false,
            })
    }

    /// Parameter `suffix` of node `i` (after folding).
    pub fn param(&self, i: usize, suffix: &str) -> Result<&[f32], BackendError> {
        let name = format!("{}.{suffix}", self.nodes()[i].name);
        self.weights
            .get(&name)
            .map(|t| t.data())
            .ok_or_else(|| BackendError::weights(&self.backend, format!("missing tensor `{name}`")))
    }

    /// Node `i`'s bias (after folding) when it has one, else `len` zeros.
    pub fn bias_or_zeros(
        &self,
        i: usize,
        has_bias: bool,
        len: usize,
    ) -> Result<Vec<f32>, BackendError> {
        match has_bias {
            true => Ok(self.param(i, "bias")?.to_vec()),
            false => Ok(vec![0.0; len]),
        }
    }

    /// A node that cannot be planned, and why.
    pub fn error(&self, i: usize, reason: impl Into<String>) -> BackendError {
        BackendError::failed(
            &self.backend,
            format!("node `{}`: {}", self.nodes()[i].name, reason.into()),
        )
    }

    /// A graph that cannot be planned, and why.
    pub fn error_of_graph(&self, reason: impl Into<String>) -> BackendError {
        BackendError::failed(&self.backend, reason.into())
    }

    /// An op this engine has no kernel for.
    pub fn unsupported(&self, i: usize, op: impl Into<String>) -> BackendError {
        BackendError::UnsupportedOp {
            backend: self.backend.clone(),
            op: op.into(),
            node: self.nodes()[i].name.clone(),
        }
    }

    /// A batch norm node's per-channel (scale, shift), computed in f64 and rounded once.
    pub fn batch_norm_affine(&self, i: usize) -> Result<(Vec<f32>, Vec<f32>), BackendError> {
        let Op::BatchNorm(bn) = self.nodes()[i].op else {
            return Err(self.error(i, "not a batch norm"));
        };
        let (gamma, beta) = (self.param(i, "weight")?, self.param(i, "bias")?);
        let (mean, var) = (
            self.param(i, "running_mean")?,
            self.param(i, "running_var")?,
        );
        let (scale, shift) = batch_norm_affine(gamma, beta, mean, var, bn.eps);
        let round = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
        Ok((round(scale), round(shift)))
    }
}

/// Each folded node's label: its name, then the batch norm folded into it.
fn merged_labels(original: &Graph) -> Vec<String> {
    let pairs = foldable_batch_norms(original);
    let nodes = original.nodes();
    let folded: Vec<usize> = pairs.values().copied().collect();
    (0..nodes.len())
        .filter(|i| !folded.contains(i))
        .map(|i| match pairs.get(&i) {
            Some(&bn) => format!("{}+{}", nodes[i].name, nodes[bn].name),
            None => nodes[i].name.clone(),
        })
        .collect()
}

/// Per value, the nodes that read it.
fn readers(graph: &Graph) -> Vec<Vec<usize>> {
    let mut readers = vec![Vec::new(); graph.nodes().len() + 1];
    for (i, node) in graph.nodes().iter().enumerate() {
        for &v in &node.inputs {
            readers[value_index(v)].push(i);
        }
    }
    readers
}

/// Per node, the activation that alone reads it and that `fuses` lets it run as an epilogue.
fn epilogues(graph: &Graph, readers: &[Vec<usize>], fuses: EpilogueRule) -> Vec<Option<usize>> {
    let nodes = graph.nodes();
    (0..nodes.len())
        .map(|i| match readers[i + 1][..] {
            [j] if graph.output() != ValueId::Node(i) && fuses(&nodes[i].op, &nodes[j].op) => {
                Some(j)
            }
            _ => None,
        })
        .collect()
}

/// When a value is live: from the step that first touches it to the last, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub first: usize,
    pub last: usize,
    /// Its size in elements.
    pub len: usize,
}

/// Values placed in shared buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferAssignment {
    /// Per value, its buffer (0 for a value no step touches).
    pub buffer_of: Vec<usize>,
    /// Per buffer, its size in elements.
    pub sizes: Vec<usize>,
}

/// The lifetime of each value `0..lens.len()` (of `lens[v]` elements) from the values each
/// step touches, reads and writes, in step order; `None` for a value no step touches.
pub fn lifetimes<T: IntoIterator<Item = usize>>(
    lens: &[usize],
    steps: impl IntoIterator<Item = T>,
) -> Vec<Option<Lifetime>> {
    let mut lifetimes = vec![None; lens.len()];
    for (s, touched) in steps.into_iter().enumerate() {
        for v in touched {
            let (first, last, len) = (s, s, lens[v]);
            lifetimes[v]
                .get_or_insert(Lifetime { first, last, len })
                .last = s;
        }
    }
    lifetimes
}

/// Assigns values to buffers step by step: the values that start at a step take the smallest
/// free buffer that holds them (else the largest free one, grown; else a new one), then the
/// values that end at the step free theirs. Values live at the same step never share.
pub fn assign_buffers(values: &[Option<Lifetime>]) -> BufferAssignment {
    let steps = values
        .iter()
        .flatten()
        .map(|l| l.last + 1)
        .max()
        .unwrap_or(0);
    let (mut starts, mut ends) = (vec![Vec::new(); steps], vec![Vec::new(); steps]);
    for (v, lifetime) in values.iter().enumerate() {
        if let Some(l) = lifetime {
            starts[l.first].push(v);
            ends[l.last].push(v);
        }
    }
    let mut buffer_of = vec![0; values.len()];
    let mut sizes: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    for s in 0..steps {
        for &v in &starts[s] {
            let len = values[v].expect("listed values have lifetimes").len;
            let fit = free
                .iter()
                .enumerate()
                .filter(|(_, &b)| sizes[b] >= len)
                .min_by_key(|(_, &b)| sizes[b])
                .or_else(|| free.iter().enumerate().max_by_key(|(_, &b)| sizes[b]))
                .map(|(k, _)| k);
            let b = match fit {
                Some(k) => free.swap_remove(k),
                None => {
                    sizes.push(0);
                    sizes.len() - 1
                }
            };
            sizes[b] = sizes[b].max(len);
            buffer_of[v] = b;
        }
        free.extend(ends[s].iter().map(|&v| buffer_of[v]));
    }
    BufferAssignment { buffer_of, sizes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::testing::assert_contains;
    use models::{Form, InputSize, Model, Variant};

    fn life(first: usize, last: usize, len: usize) -> Option<Lifetime> {
        Some(Lifetime { first, last, len })
    }

    #[test]
    fn values_live_together_never_share_and_dead_buffers_are_reused_best_fit() {
        // 0 and 1 overlap; 2 starts after both end and fits 1's buffer best; 3 is never used.
        let a = assign_buffers(&[life(0, 1, 100), life(1, 2, 10), life(3, 4, 8), None]);
        assert_eq!(a.buffer_of, vec![0, 1, 1, 0]);
        assert_eq!(a.sizes, vec![100, 10]);
        // Nothing free fits: the largest free buffer grows.
        let a = assign_buffers(&[life(0, 0, 4), life(0, 0, 6), life(1, 1, 9)]);
        assert_eq!(a.buffer_of, vec![0, 1, 1]);
        assert_eq!(a.sizes, vec![4, 9]);
    }

    fn unfused_s0() -> (Graph, Weights) {
        let model = Model::MobileOne(Variant::S0);
        let size = InputSize::square(1, 32);
        let graph = model.build(Form::Unfused, size).unwrap();
        (graph, model.seeded_weights(Form::Unfused, 1))
    }

    fn relu_after_conv(producer: &Op, activation: &Op) -> bool {
        matches!(producer, Op::Conv2d(_) | Op::Add) && *activation == Op::Relu
    }

    #[test]
    fn the_unfused_mobileone_folds_its_conv_batch_norms_and_keeps_the_skip_batch_norms() {
        let (graph, weights) = unfused_s0();
        let lowered = Lowered::new(&graph, &weights, "test", relu_after_conv).unwrap();
        let count =
            |g: &Graph, pick: fn(&Op) -> bool| g.nodes().iter().filter(|n| pick(&n.op)).count();
        let is_bn = |op: &Op| matches!(op, Op::BatchNorm(_));
        let is_conv = |op: &Op| matches!(op, Op::Conv2d(_));
        let skips = count(&lowered.graph, is_bn);
        assert!(skips > 0);
        assert_eq!(count(&graph, is_bn), count(&graph, is_conv) + skips);
        assert_eq!(lowered.folded_batch_norms, count(&graph, is_conv));
        // A folded conv is labelled with its batch norm; every ReLU runs in the epilogue of
        // its block's Add.
        let stem = lowered.nodes().iter().position(|n| is_conv(&n.op)).unwrap();
        assert_contains(lowered.label(stem), &["+"]);
        let relus: Vec<usize> = (0..lowered.nodes().len())
            .filter(|&i| lowered.nodes()[i].op == Op::Relu)
            .collect();
        assert!(relus.iter().all(|&j| lowered.in_epilogue(j)));
        for &j in &relus {
            let ValueId::Node(p) = lowered.nodes()[j].inputs[0] else {
                panic!("a ReLU of the input")
            };
            assert_eq!(lowered.epilogue(p), Some(j));
        }
        let adds = (0..lowered.nodes().len()).filter(|&i| lowered.nodes()[i].op == Op::Add);
        assert!(adds.clone().count() > 0 && adds.clone().all(|a| lowered.sums_in_place(a)));
    }

    #[test]
    fn a_missing_batch_norm_tensor_is_named() {
        let (graph, mut weights) = unfused_s0();
        let name = weights
            .iter()
            .map(|(n, _)| n.clone())
            .find(|n| n.ends_with("running_var"))
            .unwrap();
        weights.remove(&name);
        let err = Lowered::new(&graph, &weights, "test", relu_after_conv)
            .err()
            .unwrap();
        assert!(err.to_string().contains(&name), "{err}");
    }
}
