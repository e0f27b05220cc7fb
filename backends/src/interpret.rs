//! The one walk over a graph that the interpreting engines share (reference, candle,
//! libtorch): nodes in order, each one's inputs gathered and handed to the engine, and each
//! value dropped after the last node that reads it.

use models::{Graph, Node, ValueId};

/// Runs `graph` on `input`: `run(i, node, inputs)` computes node `i` from its inputs' values.
pub fn interpret<T, E>(
    graph: &Graph,
    input: T,
    mut run: impl FnMut(usize, &Node, &[&T]) -> Result<T, E>,
) -> Result<T, E> {
    let nodes = graph.nodes();
    let mut dead_after = vec![Vec::new(); nodes.len()];
    for (value, last) in graph.last_uses() {
        if let (ValueId::Node(v), Some(list)) = (value, dead_after.get_mut(last)) {
            list.push(v);
        }
    }
    let mut values: Vec<Option<T>> = nodes.iter().map(|_| None).collect();
    for (i, node) in nodes.iter().enumerate() {
        let inputs: Vec<&T> = node
            .inputs
            .iter()
            .map(|v| match v {
                ValueId::Input => &input,
                ValueId::Node(j) => values[*j].as_ref().expect("values are computed in order"),
            })
            .collect();
        let out = run(i, node, &inputs)?;
        values[i] = Some(out);
        for &v in &dead_after[i] {
            values[v] = None;
        }
    }
    Ok(match graph.output() {
        ValueId::Input => input,
        ValueId::Node(i) => values[i].take().expect("the output is kept"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{GraphBuilder, Op};

    #[test]
    fn every_value_is_dropped_after_its_last_reader_and_the_output_is_kept() {
        // x -> a -> b, x -> c = a + b: a dies after c, b after c, c is the output.
        let mut g = GraphBuilder::new("walk", vec![1, 1, 2, 2]).unwrap();
        let a = g.add("a", Op::Relu, &[ValueId::Input]).unwrap();
        let b = g.add("b", Op::Relu, &[a]).unwrap();
        let c = g.add("c", Op::Add, &[a, b]).unwrap();
        let graph = g.finish(c);
        let mut seen = Vec::new();
        let out = interpret(&graph, 1.0f64, |i, node, inputs: &[&f64]| {
            seen.push((node.name.clone(), inputs.len()));
            Ok::<f64, ()>(inputs.iter().copied().sum::<f64>() + i as f64)
        })
        .unwrap();
        // a = 1 + 0, b = 1 + 1, c = 1 + 2 + 2.
        assert_eq!(out, 5.0);
        assert_eq!(
            seen,
            vec![("a".into(), 1), ("b".into(), 1), ("c".into(), 2)]
        );
        let err = interpret(
            &graph,
            1.0f64,
            |i, _, _| if i == 1 { Err("b") } else { Ok(0.0) },
        );
        assert_eq!(err, Err("b"));
    }
}
