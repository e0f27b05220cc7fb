//! A zero-initialized, aligned float buffer: activations and packed weights live in these.
//! Buffers of a page or more start on a page boundary, so where their rows fall within a page
//! (what 4K aliasing and L1 set conflicts depend on) is the same in every process, whatever
//! the allocator did before; smaller ones start on a cache line.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

const ALIGN: usize = 64;
const PAGE: usize = 4096;

pub struct AlignedBuffer {
    ptr: NonNull<f32>,
    len: usize,
}

// The buffer owns its memory exclusively, like a Vec<f32>.
unsafe impl Send for AlignedBuffer {}
unsafe impl Sync for AlignedBuffer {}

impl AlignedBuffer {
    pub fn zeros(len: usize) -> Self {
        if len == 0 {
            return Self {
                ptr: NonNull::dangling(),
                len: 0,
            };
        }
        let layout = Self::layout(len);
        let raw = unsafe { alloc_zeroed(layout) } as *mut f32;
        let ptr = NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout));
        Self { ptr, len }
    }

    pub fn from_slice(values: &[f32]) -> Self {
        let mut b = Self::zeros(values.len());
        b.as_mut_slice().copy_from_slice(values);
        b
    }

    fn layout(len: usize) -> Layout {
        let align = if len * 4 >= PAGE { PAGE } else { ALIGN };
        Layout::from_size_align(len * 4, align).expect("buffer size fits in memory")
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn as_ptr(&self) -> *const f32 {
        self.ptr.as_ptr()
    }

    pub fn as_mut_ptr(&mut self) -> *mut f32 {
        self.ptr.as_ptr()
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        if self.len > 0 {
            unsafe { dealloc(self.ptr.as_ptr() as *mut u8, Self::layout(self.len)) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zeroed_and_aligned() {
        let b = AlignedBuffer::zeros(37);
        assert_eq!(b.as_ptr() as usize % ALIGN, 0);
        // A page or more: page aligned, so its placement within a page never varies.
        for len in [1024, 1025, 100_000] {
            assert_eq!(
                AlignedBuffer::zeros(len).as_ptr() as usize % PAGE,
                0,
                "{len}"
            );
        }
        let mut b = b;
        assert!(b.as_mut_slice().iter().all(|&x| x == 0.0));
        assert_eq!(
            AlignedBuffer::from_slice(&[1.0, 2.0]).as_mut_slice(),
            &[1.0, 2.0]
        );
        assert_eq!(AlignedBuffer::zeros(0).len(), 0);
    }
}
