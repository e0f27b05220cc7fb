//! Dense NCHW tensors in f32 or f64, the data type every crate of the suite exchanges.
//! `Element` is the tiny numeric trait that lets the reference executor and the fold run in
//! float64 for exactness checks while everything else stays float32.

use std::fmt::Debug;

/// A scalar a tensor can hold: f32 (the working type) or f64 (exactness checks).
pub trait Element: Copy + Default + PartialEq + PartialOrd + Debug + Send + Sync + 'static {
    const NAME: &'static str;
    fn to_f64(self) -> f64;
    fn from_f64(value: f64) -> Self;
}

impl Element for f32 {
    const NAME: &'static str = "f32";
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl Element for f64 {
    const NAME: &'static str = "f64";
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(value: f64) -> Self {
        value
    }
}

/// A shape and data that disagree (`expected` is None when the shape's element count does not
/// fit in `usize`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tensor shape {shape:?} holds {} elements, but {found} were given", describe_count(*expected))]
pub struct ShapeMismatch {
    pub shape: Vec<usize>,
    pub expected: Option<usize>,
    pub found: usize,
}

fn describe_count(count: Option<usize>) -> String {
    count.map_or_else(|| "more than usize::MAX".into(), |n| n.to_string())
}

/// A dense row-major tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<T: Element = f32> {
    shape: Vec<usize>,
    data: Vec<T>,
}

impl<T: Element> Tensor<T> {
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Result<Self, ShapeMismatch> {
        let expected = checked_numel(&shape);
        if expected != Some(data.len()) {
            return Err(ShapeMismatch {
                shape,
                expected,
                found: data.len(),
            });
        }
        Ok(Self { shape, data })
    }

    pub fn zeros(shape: Vec<usize>) -> Self {
        let data = vec![T::default(); numel(&shape)];
        Self { shape, data }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[T] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// Converts every element to another element type (through f64).
    pub fn cast<U: Element>(&self) -> Tensor<U> {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|v| U::from_f64(v.to_f64())).collect(),
        }
    }

    /// Index of the first NaN or infinite element and how many there are, if any.
    pub fn non_finite(&self) -> Option<(usize, usize)> {
        let mut first = None;
        let mut count = 0;
        for (i, v) in self.data.iter().enumerate() {
            if !v.to_f64().is_finite() {
                first.get_or_insert(i);
                count += 1;
            }
        }
        first.map(|i| (i, count))
    }
}

/// Number of elements of a shape (1 for a scalar). Only for shapes built by the suite; a
/// shape read from a file goes through `checked_numel`.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Number of elements of a shape, or None when the product overflows `usize` (a shape read
/// from untrusted input).
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Relative L2 error `||actual - expected|| / ||expected||`, in f64.
/// When `expected` is all zeros the absolute L2 norm of the difference is returned.
pub fn relative_l2<A: Element, B: Element>(actual: &[A], expected: &[B]) -> f64 {
    assert_eq!(
        actual.len(),
        expected.len(),
        "relative_l2 of unequal lengths"
    );
    let mut diff = 0.0f64;
    let mut norm = 0.0f64;
    for (a, e) in actual.iter().zip(expected) {
        let (a, e) = (a.to_f64(), e.to_f64());
        diff += (a - e) * (a - e);
        norm += e * e;
    }
    if norm == 0.0 {
        diff.sqrt()
    } else {
        (diff / norm).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_the_element_count() {
        let err = Tensor::<f32>::new(vec![2, 3], vec![0.0; 5]).unwrap_err();
        assert_eq!(err.expected, Some(6));
        assert_eq!(err.found, 5);
        assert!(
            Tensor::<f32>::new(vec![], vec![1.0]).is_ok(),
            "a scalar has one element"
        );
        // 2^61 * 3 * 224 * 224 wraps around usize; a wrapping product could match a small
        // payload, a checked one refuses it.
        let huge = vec![2_305_843_009_213_693_953, 3, 224, 224];
        assert_eq!(checked_numel(&huge), None);
        let err = Tensor::<f32>::new(huge, vec![0.0; 4]).unwrap_err();
        assert_eq!(err.expected, None);
        assert!(err.to_string().contains("more than usize::MAX"), "{err}");
    }

    #[test]
    fn relative_l2_matches_a_hand_computed_value() {
        // diff = (0, 0, 1) -> 1; norm of expected = sqrt(1 + 4 + 4) = 3.
        let r = relative_l2(&[1.0f32, 2.0, 3.0], &[1.0f64, 2.0, 2.0]);
        assert!((r - 1.0 / 3.0).abs() < 1e-15, "{r}");
        assert_eq!(relative_l2(&[0.5f32], &[0.0f32]), 0.5);
    }

    #[test]
    fn non_finite_reports_first_index_and_count() {
        let t = Tensor::new(vec![4], vec![1.0f32, f32::NAN, 2.0, f32::INFINITY]).unwrap();
        assert_eq!(t.non_finite(), Some((1, 2)));
        assert_eq!(Tensor::<f32>::zeros(vec![3]).non_finite(), None);
    }
}
