//! One block of 16 channels as a value in registers: the few operations the Winograd transforms
//! and epilogues need, over `__m512` (AVX-512), two `__m256` (AVX2) or a plain array (every other
//! kernel set, which the compiler vectorizes where it can).
//!
//! Why not arrays everywhere: the transforms hold dozens of 16-lane values at once, and the
//! compiler keeps `[f32; 16]` arrays of arrays on the stack, copying them between steps; vector
//! types stay in registers.
//!
//! No `array::map` or closures here or in the callers: they are not inlined into `#[target_feature]`
//! functions. The methods are `#[inline(always)]` without `#[target_feature]`: they are only called from
//! functions compiled with the feature (`winograd::tiles_avx512`, `tiles_avx2`), into which they
//! inline, intrinsics included.
#![deny(unsafe_op_in_unsafe_fn)]

use crate::plan::BLOCK;

/// 16 `f32` lanes.
pub(super) trait Lanes16: Copy {
    /// Loads 16 floats from `p`.
    ///
    /// # Safety
    /// `p..p+16` is readable, and the type's target feature is enabled in the caller.
    unsafe fn load(p: *const f32) -> Self;
    /// Stores 16 floats at `p`.
    ///
    /// # Safety
    /// `p..p+16` is writable, and the type's target feature is enabled in the caller.
    unsafe fn store(self, p: *mut f32);
    fn add(self, b: Self) -> Self;
    fn sub(self, b: Self) -> Self;
    /// Times a constant.
    fn scale(self, k: f32) -> Self;
    /// `max(v, 0)`, with `f32::max`'s answer for NaN (zero).
    fn relu(self) -> Self;
}

/// The portable form.
#[derive(Clone, Copy)]
pub(super) struct Plain([f32; BLOCK]);

impl Lanes16 for Plain {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller keeps p..p+16 readable.
        Plain(unsafe { p.cast::<[f32; BLOCK]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller keeps p..p+16 writable.
        unsafe { p.cast::<[f32; BLOCK]>().write_unaligned(self.0) }
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        let mut r = self.0;
        for (r, b) in r.iter_mut().zip(b.0) {
            *r += b;
        }
        Plain(r)
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        let mut r = self.0;
        for (r, b) in r.iter_mut().zip(b.0) {
            *r -= b;
        }
        Plain(r)
    }
    #[inline(always)]
    fn scale(self, k: f32) -> Self {
        let mut r = self.0;
        for r in r.iter_mut() {
            *r *= k;
        }
        Plain(r)
    }
    #[inline(always)]
    fn relu(self) -> Self {
        let mut r = self.0;
        for r in r.iter_mut() {
            *r = r.max(0.0);
        }
        Plain(r)
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Lanes16;

    /// One `zmm`. Values exist only inside functions compiled with `avx512f`.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Avx512(__m512);

    // SAFETY (every block below): an `Avx512` is only made by `load`, whose caller guarantees that
    // avx512f is enabled, so the intrinsics run where the feature is present.
    impl Lanes16 for Avx512 {
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx512(unsafe { _mm512_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm512_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            Avx512(unsafe { _mm512_add_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn sub(self, b: Self) -> Self {
            Avx512(unsafe { _mm512_sub_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn scale(self, k: f32) -> Self {
            Avx512(unsafe { _mm512_mul_ps(self.0, _mm512_set1_ps(k)) })
        }
        #[inline(always)]
        fn relu(self) -> Self {
            // max(v, 0) returns the second operand for NaN, as f32::max(NaN, 0) does.
            Avx512(unsafe { _mm512_max_ps(self.0, _mm512_setzero_ps()) })
        }
    }

    /// Two `ymm`. Values exist only inside functions compiled with `avx2`.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Avx2(__m256, __m256);

    // SAFETY (every block below): an `Avx2` is only made by `load`, whose caller guarantees that
    // avx2 is enabled, so the intrinsics run where the feature is present.
    impl Lanes16 for Avx2 {
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { Avx2(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe {
                _mm256_storeu_ps(p, self.0);
                _mm256_storeu_ps(p.add(8), self.1);
            }
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            unsafe { Avx2(_mm256_add_ps(self.0, b.0), _mm256_add_ps(self.1, b.1)) }
        }
        #[inline(always)]
        fn sub(self, b: Self) -> Self {
            unsafe { Avx2(_mm256_sub_ps(self.0, b.0), _mm256_sub_ps(self.1, b.1)) }
        }
        #[inline(always)]
        fn scale(self, k: f32) -> Self {
            unsafe {
                let k = _mm256_set1_ps(k);
                Avx2(_mm256_mul_ps(self.0, k), _mm256_mul_ps(self.1, k))
            }
        }
        #[inline(always)]
        fn relu(self) -> Self {
            unsafe {
                let z = _mm256_setzero_ps();
                Avx2(_mm256_max_ps(self.0, z), _mm256_max_ps(self.1, z))
            }
        }
    }
}
