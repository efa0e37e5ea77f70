//! One block of 16 channels as a value in registers: the few operations the micro-kernel, the
//! Winograd transforms and the epilogue need, over `__m512` (AVX-512), two `__m256` (AVX2 + FMA),
//! four `float32x4_t` (NEON) or a plain array (the portable kernels, which the compiler vectorizes
//! where it can). Every kernel is written once over [`Lanes16`] and compiled once per type inside a
//! `#[target_feature]` function.
//!
//! Why not arrays everywhere: the transforms hold dozens of 16-lane values at once, and the
//! compiler keeps `[f32; 16]` arrays of arrays on the stack, copying them between steps; vector
//! types stay in registers.
//!
//! No `array::map` or closures here or in the callers: they are not inlined into `#[target_feature]`
//! functions. The methods are `#[inline(always)]` without `#[target_feature]`: they are only called from
//! functions compiled with the feature (the `strip` and `tiles` functions of each kernel set), into
//! which they inline, intrinsics included.
#![deny(unsafe_op_in_unsafe_fn)]

use crate::program::{Post, BLOCK};

/// A register's worth of a block's lanes (or all 16 where one value holds them): what the
/// Winograd input transform, which works lane by lane, computes on. AVX2's blocks take two `ymm`,
/// and the transform's temporaries for both halves at once did not fit its 16 registers, so it
/// transforms one half at a time.
pub(super) trait Part: Copy {
    /// Lanes in one value: 16 divided by a power of two.
    const LANES: usize;
    /// Loads `LANES` floats from `p`.
    ///
    /// # Safety
    /// `p..p+LANES` is readable, and the type's target feature is enabled in the caller.
    unsafe fn load(p: *const f32) -> Self;
    /// Stores `LANES` floats at `p`.
    ///
    /// # Safety
    /// `p..p+LANES` is writable, and the type's target feature is enabled in the caller.
    unsafe fn store(self, p: *mut f32);
    fn add(self, b: Self) -> Self;
    fn sub(self, b: Self) -> Self;
    /// `self + x·k`, as [`Lanes16::fma_k`].
    fn fma_k(self, x: Self, k: f32) -> Self;
    /// `self − x·k`, as [`Lanes16::fnma_k`].
    fn fnma_k(self, x: Self, k: f32) -> Self;
}

/// [`Part`] for a [`Lanes16`] type that is its own part, by its own operations.
macro_rules! whole_part {
    ($t:ty) => {
        impl $crate::kernels::simd::Part for $t {
            const LANES: usize = 16;
            #[inline(always)]
            unsafe fn load(p: *const f32) -> Self {
                // SAFETY: the caller's contract is `Lanes16::load`'s.
                unsafe { <Self as $crate::kernels::simd::Lanes16>::load(p) }
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut f32) {
                // SAFETY: the caller's contract is `Lanes16::store`'s.
                unsafe { <Self as $crate::kernels::simd::Lanes16>::store(self, p) }
            }
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                <Self as $crate::kernels::simd::Lanes16>::add(self, b)
            }
            #[inline(always)]
            fn sub(self, b: Self) -> Self {
                <Self as $crate::kernels::simd::Lanes16>::sub(self, b)
            }
            #[inline(always)]
            fn fma_k(self, x: Self, k: f32) -> Self {
                <Self as $crate::kernels::simd::Lanes16>::fma_k(self, x, k)
            }
            #[inline(always)]
            fn fnma_k(self, x: Self, k: f32) -> Self {
                <Self as $crate::kernels::simd::Lanes16>::fnma_k(self, x, k)
            }
        }
    };
}

/// 16 `f32` lanes.
pub(super) trait Lanes16: Copy {
    /// What the Winograd input transform computes on ([`Part`]).
    type Part: Part;
    /// All zeros.
    ///
    /// # Safety
    /// The type's target feature is enabled in the caller.
    unsafe fn zero() -> Self;
    /// `*p` in every lane.
    ///
    /// # Safety
    /// `p` is readable, and the type's target feature is enabled in the caller.
    unsafe fn splat(p: *const f32) -> Self;
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
    /// `self + w·x`, fused where the kernel set has FMA (the portable form rounds twice: `mul_add`
    /// is a slow library call where the hardware has no FMA).
    fn fma(self, w: Self, x: Self) -> Self;
    /// `self + x·k` for a constant `k`, fused like [`Lanes16::fma`] (the Winograd transforms' constant
    /// multiples: one instruction where a product and a sum took two).
    fn fma_k(self, x: Self, k: f32) -> Self;
    /// `self − x·k`, likewise (so that a constant and its negative share one register).
    fn fnma_k(self, x: Self, k: f32) -> Self;
    /// `max(v, 0)`, with `f32::max`'s answer for NaN (zero).
    fn relu(self) -> Self;
}

/// One output pixel: `y` plus the bias (if any: Winograd's products have none), then the
/// epilogue's residual and ReLU, stored at `dst` (the unfused graph's order of operations, for
/// direct and Winograd kernels alike).
///
/// # Safety
/// `dst..dst+16` is writable and `res`, if any, points at 16 readable floats; `S`'s target feature
/// is enabled.
#[inline(always)]
pub(super) unsafe fn finish<S: Lanes16>(
    dst: *mut f32,
    y: S,
    bias: Option<S>,
    res: Option<*const f32>,
    post: &[Post],
) {
    let mut v = match bias {
        Some(b) => y.add(b),
        None => y,
    };
    for step in post {
        match step {
            Post::Residual => {
                if let Some(r) = res {
                    // SAFETY: the caller keeps r..r+16 readable.
                    v = v.add(unsafe { S::load(r) });
                }
            }
            Post::Relu => v = v.relu(),
        }
    }
    // SAFETY: the caller keeps dst..dst+16 writable.
    unsafe { v.store(dst) }
}

/// The epilogues that [`finish_as`] has a form of its own for, so that a kernel matches the
/// epilogue once per strip or tile rather than walking `post` for every pixel (a loop LLVM also
/// answered by copying the strip's sums through memory); `Other` walks `post` step by step.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Epilogue {
    /// The bias only (if any).
    Bias,
    Relu,
    ResidualRelu,
    Other,
}

impl Epilogue {
    pub(super) fn of(post: &[Post]) -> Epilogue {
        match post {
            [] => Epilogue::Bias,
            [Post::Relu] => Epilogue::Relu,
            [Post::Residual, Post::Relu] => Epilogue::ResidualRelu,
            _ => Epilogue::Other,
        }
    }
}

/// Evaluates `$call` with `$e` the `u8` const of `$post`'s [`Epilogue`], one arm per shape: a
/// direct call in each, so that the callee (`#[inline(always)]`) is inlined into the kernel set's
/// target-feature function, which a function pointer would not be.
macro_rules! by_epilogue {
    ($post:expr, $e:ident => $call:expr) => {
        match $crate::kernels::simd::Epilogue::of($post) {
            $crate::kernels::simd::Epilogue::Bias => {
                const $e: u8 = $crate::kernels::simd::Epilogue::Bias as u8;
                $call
            }
            $crate::kernels::simd::Epilogue::Relu => {
                const $e: u8 = $crate::kernels::simd::Epilogue::Relu as u8;
                $call
            }
            $crate::kernels::simd::Epilogue::ResidualRelu => {
                const $e: u8 = $crate::kernels::simd::Epilogue::ResidualRelu as u8;
                $call
            }
            $crate::kernels::simd::Epilogue::Other => {
                const $e: u8 = $crate::kernels::simd::Epilogue::Other as u8;
                $call
            }
        }
    };
}
pub(super) use by_epilogue;

/// [`finish`] for a `post` of shape `E` (an [`Epilogue`] as `u8`).
///
/// # Safety
/// As for [`finish`], and `Epilogue::of(post) as u8 == E`.
#[inline(always)]
pub(super) unsafe fn finish_as<S: Lanes16, const E: u8>(
    dst: *mut f32,
    y: S,
    bias: Option<S>,
    res: Option<*const f32>,
    post: &[Post],
) {
    let v = match bias {
        Some(b) => y.add(b),
        None => y,
    };
    // SAFETY: as for `finish`, which the caller's contract is.
    unsafe {
        if E == Epilogue::Bias as u8 {
            v.store(dst)
        } else if E == Epilogue::Relu as u8 {
            v.relu().store(dst)
        } else if E == Epilogue::ResidualRelu as u8 {
            match res {
                Some(r) => v.add(S::load(r)).relu().store(dst),
                None => v.relu().store(dst),
            }
        } else {
            finish(dst, y, bias, res, post)
        }
    }
}

/// The portable form.
#[derive(Clone, Copy)]
pub(super) struct Plain([f32; BLOCK]);

whole_part!(Plain);

impl Lanes16 for Plain {
    type Part = Plain;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Plain([0.0; BLOCK])
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> Self {
        // SAFETY: the caller keeps p readable.
        Plain([unsafe { *p }; BLOCK])
    }
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
    fn fma(self, w: Self, x: Self) -> Self {
        let mut r = self.0;
        for ((r, w), x) in r.iter_mut().zip(w.0).zip(x.0) {
            *r += w * x;
        }
        Plain(r)
    }
    #[inline(always)]
    fn fma_k(self, x: Self, k: f32) -> Self {
        let mut r = self.0;
        for (r, x) in r.iter_mut().zip(x.0) {
            *r += x * k;
        }
        Plain(r)
    }
    #[inline(always)]
    fn fnma_k(self, x: Self, k: f32) -> Self {
        let mut r = self.0;
        for (r, x) in r.iter_mut().zip(x.0) {
            *r -= x * k;
        }
        Plain(r)
    }
    #[inline(always)]
    fn relu(self) -> Self {
        let mut r = self.0;
        // `x < 0` rather than `max(x, 0)`, so NaN stays NaN as in PyTorch (and the reference).
        for r in r.iter_mut() {
            *r = if *r < 0.0 { 0.0 } else { *r };
        }
        Plain(r)
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Lanes16, Part};

    /// One `zmm`. Values exist only inside functions compiled with `avx512f`.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Avx512(__m512);

    // SAFETY (every block below): an `Avx512` is only made by `zero`, `splat` and `load`, whose
    // callers guarantee that avx512f is enabled, so the intrinsics run where the feature is present.
    whole_part!(Avx512);

    impl Lanes16 for Avx512 {
        type Part = Avx512;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx512(unsafe { _mm512_setzero_ps() })
        }
        #[inline(always)]
        unsafe fn splat(p: *const f32) -> Self {
            Avx512(unsafe { _mm512_set1_ps(*p) })
        }
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
        fn fma(self, w: Self, x: Self) -> Self {
            Avx512(unsafe { _mm512_fmadd_ps(w.0, x.0, self.0) })
        }
        #[inline(always)]
        fn fma_k(self, x: Self, k: f32) -> Self {
            Avx512(unsafe { _mm512_fmadd_ps(x.0, _mm512_set1_ps(k), self.0) })
        }
        #[inline(always)]
        fn fnma_k(self, x: Self, k: f32) -> Self {
            Avx512(unsafe { _mm512_fnmadd_ps(x.0, _mm512_set1_ps(k), self.0) })
        }
        #[inline(always)]
        fn relu(self) -> Self {
            // max(0, v) is `0 > v ? 0 : v`: the second operand for NaN and for ±0, so NaN stays
            // NaN as in PyTorch, and -0 stays -0 as in the reference.
            Avx512(unsafe { _mm512_max_ps(_mm512_setzero_ps(), self.0) })
        }
    }

    /// One `ymm`, half an [`Avx2`]: the AVX2 input transform's values. Like `Avx2`, made only
    /// by `load` inside functions compiled with `avx2` and `fma`.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Ymm(__m256);

    // SAFETY (every block below): a `Ymm` is only made by `load`, whose callers guarantee that
    // avx2 and fma are enabled.
    impl Part for Ymm {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Ymm(unsafe { _mm256_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm256_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            Ymm(unsafe { _mm256_add_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn sub(self, b: Self) -> Self {
            Ymm(unsafe { _mm256_sub_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn fma_k(self, x: Self, k: f32) -> Self {
            Ymm(unsafe { _mm256_fmadd_ps(x.0, _mm256_set1_ps(k), self.0) })
        }
        #[inline(always)]
        fn fnma_k(self, x: Self, k: f32) -> Self {
            Ymm(unsafe { _mm256_fnmadd_ps(x.0, _mm256_set1_ps(k), self.0) })
        }
    }

    /// Two `ymm`. Values exist only inside functions compiled with `avx2` and `fma`.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Avx2(__m256, __m256);

    // SAFETY (every block below): an `Avx2` is only made by `zero`, `splat` and `load`, whose callers
    // guarantee that avx2 and fma are enabled, so the intrinsics run where the features are present.
    impl Lanes16 for Avx2 {
        type Part = Ymm;
        #[inline(always)]
        unsafe fn zero() -> Self {
            unsafe { Avx2(_mm256_setzero_ps(), _mm256_setzero_ps()) }
        }
        #[inline(always)]
        unsafe fn splat(p: *const f32) -> Self {
            // One broadcast serves both halves.
            let b = unsafe { _mm256_broadcast_ss(&*p) };
            Avx2(b, b)
        }
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
        fn fma(self, w: Self, x: Self) -> Self {
            unsafe {
                Avx2(
                    _mm256_fmadd_ps(w.0, x.0, self.0),
                    _mm256_fmadd_ps(w.1, x.1, self.1),
                )
            }
        }
        #[inline(always)]
        fn fma_k(self, x: Self, k: f32) -> Self {
            unsafe {
                let k = _mm256_set1_ps(k);
                Avx2(
                    _mm256_fmadd_ps(x.0, k, self.0),
                    _mm256_fmadd_ps(x.1, k, self.1),
                )
            }
        }
        #[inline(always)]
        fn fnma_k(self, x: Self, k: f32) -> Self {
            unsafe {
                let k = _mm256_set1_ps(k);
                Avx2(
                    _mm256_fnmadd_ps(x.0, k, self.0),
                    _mm256_fnmadd_ps(x.1, k, self.1),
                )
            }
        }
        #[inline(always)]
        fn relu(self) -> Self {
            unsafe {
                // `0 > v ? 0 : v`, as for AVX-512.
                let z = _mm256_setzero_ps();
                Avx2(_mm256_max_ps(z, self.0), _mm256_max_ps(z, self.1))
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub(super) use arm::Neon;

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    use super::Lanes16;

    /// Four `q` registers. NEON is part of the aarch64 base architecture, but values still exist
    /// only inside functions compiled with `neon`.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Neon([float32x4_t; 4]);

    // SAFETY (every block below): a `Neon` is only made by `zero`, `splat` and `load`, whose
    // callers guarantee that neon is enabled, so the intrinsics run where the feature is present.
    whole_part!(Neon);

    impl Lanes16 for Neon {
        type Part = Neon;
        #[inline(always)]
        unsafe fn zero() -> Self {
            let z = unsafe { vdupq_n_f32(0.0) };
            Neon([z; 4])
        }
        #[inline(always)]
        unsafe fn splat(p: *const f32) -> Self {
            let b = unsafe { vld1q_dup_f32(p) };
            Neon([b; 4])
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe {
                Neon([
                    vld1q_f32(p),
                    vld1q_f32(p.add(4)),
                    vld1q_f32(p.add(8)),
                    vld1q_f32(p.add(12)),
                ])
            }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe {
                for (j, v) in self.0.into_iter().enumerate() {
                    vst1q_f32(p.add(4 * j), v);
                }
            }
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            let mut r = self.0;
            for (r, b) in r.iter_mut().zip(b.0) {
                *r = unsafe { vaddq_f32(*r, b) };
            }
            Neon(r)
        }
        #[inline(always)]
        fn sub(self, b: Self) -> Self {
            let mut r = self.0;
            for (r, b) in r.iter_mut().zip(b.0) {
                *r = unsafe { vsubq_f32(*r, b) };
            }
            Neon(r)
        }
        #[inline(always)]
        fn fma(self, w: Self, x: Self) -> Self {
            let mut r = self.0;
            for ((r, w), x) in r.iter_mut().zip(w.0).zip(x.0) {
                *r = unsafe { vfmaq_f32(*r, w, x) };
            }
            Neon(r)
        }
        #[inline(always)]
        fn fma_k(self, x: Self, k: f32) -> Self {
            let mut r = self.0;
            for (r, x) in r.iter_mut().zip(x.0) {
                *r = unsafe { vfmaq_n_f32(*r, x, k) };
            }
            Neon(r)
        }
        #[inline(always)]
        fn fnma_k(self, x: Self, k: f32) -> Self {
            let mut r = self.0;
            for (r, x) in r.iter_mut().zip(x.0) {
                *r = unsafe { vfmsq_n_f32(*r, x, k) };
            }
            Neon(r)
        }
        #[inline(always)]
        fn relu(self) -> Self {
            let mut r = self.0;
            // `v < 0 ? 0 : v` as a select (vmaxnmq would pick 0 over a NaN, vmaxq turn -0 into
            // +0): NaN stays NaN as in PyTorch, -0 stays -0 as in the reference.
            let z = unsafe { vdupq_n_f32(0.0) };
            for r in r.iter_mut() {
                *r = unsafe { vbslq_f32(vcltq_f32(*r, z), z, *r) };
            }
            Neon(r)
        }
    }
}
