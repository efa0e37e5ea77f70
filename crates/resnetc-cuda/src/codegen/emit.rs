//! The CUDA C++ text: two device templates (the convolution and the head) written once, and per
//! kernel an epilogue struct and an `extern "C"` wrapper that instantiates a template with the layer's
//! constants.
//!
//! The source needs no headers and uses only what NVRTC provides built in (`float4`, `fmaf`, `fmaxf`,
//! `__ldg`, `threadIdx`, ...). It also compiles as host C++ behind a small shim that defines those
//! (the tests do this to run the kernels on the CPU), so it avoids warp intrinsics and relies only on
//! `__syncthreads()` between threads.
//!
//! Nothing from the model reaches the text but numbers: names are `k{index}_{kind}`.

use std::fmt::Write;

use super::tile::{Tile, WARP_M};

/// The fixed part of every program.
pub(crate) const PRELUDE: &str = r#"namespace rnc {

// Implicit-GEMM convolution, NCHW, one block per BM output pixels x BN output channels.
// x: [batch][CIN][H][W]; wt: weights as [KP][COUTP] (k = (ci*KH + kh)*KW + kw, zero-padded);
// taps: where each k reads in x (see load); y: [batch][COUT][OH][OW]. Epi::apply4/apply1 finish
// 4 or 1 consecutive pixels of one channel. Offsets within a batch fit in int (the host checks).
template <int CIN, int H, int W, int COUT, int COUTP, int OH, int OW, int KH, int KW, int SH, int SW, int PT, int PL,
          int BM, int BN, int BK, int TM, int TN, int WML, class Epi>
__device__ __forceinline__ void conv(const float* __restrict__ x, const float* __restrict__ wt,
                                     const float* __restrict__ bias, const float* __restrict__ res,
                                     float* __restrict__ y, int batch, const int* __restrict__ taps) {
  constexpr int P = OH * OW;
  constexpr int KK = KH * KW;
  constexpr int K = CIN * KK;
  constexpr int KP = (K + BK - 1) / BK * BK;
  constexpr int MG = BM / TM;
  constexpr int NG = BN / TN;
  constexpr int T = MG * NG;
  constexpr int WNL = 32 / WML;
  constexpr int RPT = T / BM;
  constexpr int LA = BK / RPT;
  constexpr int B4 = BK * BN / 4;
  constexpr int LB = (B4 + T - 1) / T;
  static_assert(TM % 4 == 0 && TN % 4 == 0, "thread tiles are read as float4");
  static_assert(T % BM == 0 && BK % RPT == 0, "A-tile loading needs T to be a multiple of BM");
  static_assert(MG % WML == 0 && NG % WNL == 0, "warps tile the block");
  static_assert(COUTP % BN == 0 && COUTP % 4 == 0, "padded channels");
  static_assert(KH * KW < 64, "tap masks are 64-bit, tap 63 marks padding");

  __shared__ __align__(16) float As[BK][BM];
  __shared__ __align__(16) float Bs[BK][BN];

  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  constexpr int WARPS_M = MG / WML;
  const int tx = (warp % WARPS_M) * WML + lane % WML;
  const int ty = (warp / WARPS_M) * WNL + lane / WML;
  const long long M = (long long)batch * P;
  const long long m_block = (long long)blockIdx.x * BM;
  const int n_block = blockIdx.y * BN;

  // The output pixel whose receptive field this thread gathers into the A tile: its offset in x
  // (at kernel tap 0, possibly outside the image) and which of the KH*KW taps fall inside.
  const int am = tid % BM;
  const int ak = tid / BM;
  int xo = 0;
  unsigned long long inside = 0;
  if (m_block + am < M) {
    const long long m = m_block + am;
    const long long img = m / P;
    const int p = (int)(m - img * P);
    const int ih0 = (p / OW) * SH - PT;
    const int iw0 = (p % OW) * SW - PL;
    xo = (int)img * (CIN * H * W) + ih0 * W + iw0;
#pragma unroll
    for (int kh = 0; kh < KH; ++kh)
#pragma unroll
      for (int kw = 0; kw < KW; ++kw)
        if (ih0 + kh >= 0 && ih0 + kh < H && iw0 + kw >= 0 && iw0 + kw < W) inside |= 1ull << (kh * KW + kw);
  }

  float ra[LA];
  float4 rb[LB];
  auto load = [&](int k0) {
    // taps[k] = (ci*H*W + kh*W + kw) << 6 | (kh*KW + kw), and tap 63 (never inside) past K.
#pragma unroll
    for (int i = 0; i < LA; ++i) {
      const int e = taps[k0 + ak + i * RPT];
      ra[i] = (inside >> (e & 63)) & 1 ? __ldg(x + (xo + (e >> 6))) : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < LB; ++i) {
      const int e = tid + i * T;
      if (B4 % T == 0 || e < B4) {
        const int kk = e / (BN / 4);
        const int nn = (e % (BN / 4)) * 4;
        rb[i] = __ldg(reinterpret_cast<const float4*>(wt + (long long)(k0 + kk) * COUTP + n_block + nn));
      }
    }
  };
  auto store = [&]() {
#pragma unroll
    for (int i = 0; i < LA; ++i) As[ak + i * RPT][am] = ra[i];
#pragma unroll
    for (int i = 0; i < LB; ++i) {
      const int e = tid + i * T;
      if (B4 % T == 0 || e < B4) *reinterpret_cast<float4*>(&Bs[e / (BN / 4)][(e % (BN / 4)) * 4]) = rb[i];
    }
  };

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  load(0);
  // Not unrolled: the body is already large, and unrolling a dozen copies only costs compile time.
#pragma unroll 1
  for (int k0 = 0; k0 < KP; k0 += BK) {
    store();
    __syncthreads();
    if (k0 + BK < KP) load(k0 + BK);
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM];
      float b[TN];
#pragma unroll
      for (int i = 0; i < TM; i += 4) {
        const float4 t = *reinterpret_cast<const float4*>(&As[kk][tx * TM + i]);
        a[i] = t.x; a[i + 1] = t.y; a[i + 2] = t.z; a[i + 3] = t.w;
      }
#pragma unroll
      for (int j = 0; j < TN; j += 4) {
        const float4 t = *reinterpret_cast<const float4*>(&Bs[kk][ty * TN + j]);
        b[j] = t.x; b[j + 1] = t.y; b[j + 2] = t.z; b[j + 3] = t.w;
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }

  const long long m0 = m_block + (long long)tx * TM;
#pragma unroll
  for (int j = 0; j < TN; ++j) {
    const int c = n_block + ty * TN + j;
    if (c >= COUT) continue;
    if (P % TM == 0) {
      // All TM pixels are in one image, 16-byte aligned.
      if (m0 < M) {
        const long long img = m0 / P;
        const int p = (int)(m0 - img * P);
        float* yp = y + (img * COUT + c) * P + p;
#pragma unroll
        for (int i = 0; i < TM; i += 4) {
          const float4 v = Epi::apply4(make_float4(acc[i][j], acc[i + 1][j], acc[i + 2][j], acc[i + 3][j]),
                                       img, c, p + i, bias, res);
          *reinterpret_cast<float4*>(yp + i) = v;
        }
      }
    } else {
#pragma unroll
      for (int i = 0; i < TM; ++i) {
        const long long m = m0 + i;
        if (m < M) {
          const long long img = m / P;
          const int p = (int)(m - img * P);
          y[(img * COUT + c) * P + p] = Epi::apply1(acc[i][j], img, c, p, bias, res);
        }
      }
    }
  }
}

// Global average pool (when POOL) or a plain read of F = C*P features, then a fully connected layer.
// x: [batch][C][P]; w: [NOUT][F]; y: [batch][NOUT]; one block per image.
template <int C, int P, bool POOL, int NOUT, int T, bool BIAS>
__device__ __forceinline__ void head(const float* __restrict__ x, const float* __restrict__ w,
                                     const float* __restrict__ bias, float* __restrict__ y,
                                     float alpha, float beta) {
  constexpr int F = POOL ? C : C * P;
  __shared__ float feat[F];
  const long long n = blockIdx.x;
  const float* xn = x + n * (C * P);
  if (POOL) {
    for (int c = threadIdx.x; c < C; c += T) {
      float s = 0.0f;
      for (int p = 0; p < P; ++p) s += __ldg(xn + c * P + p);
      feat[c] = s / (float)P;
    }
  } else {
    for (int f = threadIdx.x; f < F; f += T) feat[f] = __ldg(xn + f);
  }
  __syncthreads();
  for (int j = threadIdx.x; j < NOUT; j += T) {
    const float* wj = w + (long long)j * F;
    float s = 0.0f;
    for (int f = 0; f < F; ++f) s = fmaf(feat[f], __ldg(wj + f), s);
    float v = alpha * s;
    if (BIAS) v += beta * __ldg(bias + j);
    y[n * NOUT + j] = v;
  }
}

}  // namespace rnc
"#;

/// One step of a convolution's epilogue after the bias, with the sizes it needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum EpiStep {
    /// `v += res[n][c][p]` (the residual has the output's shape).
    AddDirect,
    /// `v += res[n][c - pad][oh*stride][ow*stride]` for `pad <= c < pad + channels`.
    AddSubsampled {
        channels: usize,
        h: usize,
        w: usize,
        stride: usize,
        pad: usize,
    },
    Relu,
}

/// Everything baked into one convolution kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConvKernel {
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub coutp: usize,
    pub oh: usize,
    pub ow: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub bias: bool,
    pub epilogue: Vec<EpiStep>,
    pub tile: Tile,
    pub batch: Option<usize>,
    /// The `__constant__` tap table the kernel reads ([`tap_table`]).
    pub taps: String,
}

/// The tap table of a `kh × kw` window over a `cin × h × w` input: for each k of the reduction,
/// padded to `kp`, `(ci·h·w + kh·w + kw) << 6 | (kh·KW + kw)`, and tap 63 (never inside) past the end.
/// Tables depend only on these sizes, so layers share them.
pub(crate) fn tap_table(
    name: &str,
    cin: usize,
    h: usize,
    w: usize,
    kernel: [usize; 2],
    kp: usize,
) -> String {
    let [kh, kw] = kernel;
    let k = cin * kh * kw;
    let vals: Vec<String> = (0..kp)
        .map(|i| {
            if i >= k {
                return "63".to_string();
            }
            let (ci, r) = (i / (kh * kw), i % (kh * kw));
            let delta = ci * h * w + (r / kw) * w + r % kw;
            ((delta << 6) | r).to_string()
        })
        .collect();
    let mut s = format!(
        "// taps of a {kh}x{kw} window over {cin}x{h}x{w}\n__constant__ int {name}[{kp}] = {{\n"
    );
    for line in vals.chunks(16) {
        let _ = writeln!(s, "  {},", line.join(", "));
    }
    s.push_str("};\n");
    s
}

/// Everything baked into one head kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct HeadKernel {
    pub channels: usize,
    pub pixels: usize,
    pub pool: bool,
    pub nout: usize,
    pub threads: usize,
    pub bias: bool,
    /// `alpha` and `beta` as C float literals.
    pub alpha: String,
    pub beta: String,
}

/// A float as a C literal (finite values only; the caller checks).
pub(crate) fn c_float(v: f32) -> String {
    let s = format!("{v:?}");
    if s.contains(['.', 'e']) {
        format!("{s}f")
    } else {
        format!("{s}.0f")
    }
}

fn batch_expr(batch: Option<usize>) -> String {
    match batch {
        Some(b) => b.to_string(),
        None => "batch".to_string(),
    }
}

impl ConvKernel {
    pub fn describe(&self) -> String {
        let steps: Vec<String> = std::iter::once("bias")
            .filter(|_| self.bias)
            .map(str::to_string)
            .chain(self.epilogue.iter().map(|s| match s {
                EpiStep::AddDirect => "add".to_string(),
                EpiStep::AddSubsampled { stride, pad, .. } => {
                    format!("add(subsample={stride},pad={pad})")
                }
                EpiStep::Relu => "relu".to_string(),
            }))
            .collect();
        format!(
            "conv {}->{} {}x{}->{}x{} k{}x{} s{}x{} p{},{} [{}]",
            self.cin,
            self.cout,
            self.h,
            self.w,
            self.oh,
            self.ow,
            self.kernel[0],
            self.kernel[1],
            self.stride[0],
            self.stride[1],
            self.pad[0],
            self.pad[1],
            steps.join(",")
        )
    }

    /// The kernel's text, named `name`.
    pub fn emit(&self, name: &str) -> String {
        let t = &self.tile;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "// {}; tile {}x{}x{}, thread {}x{}, {} threads{}",
            self.describe(),
            t.bm,
            t.bn,
            t.bk,
            t.tm,
            t.tn,
            t.threads(),
            self.batch
                .map_or_else(String::new, |b| format!(", batch {b}"))
        );
        let _ = writeln!(s, "struct {name}_epi {{");
        let p = self.oh * self.ow;
        for vector in [true, false] {
            let (ty, lanes): (&str, &[&str]) = if vector {
                ("float4", &["x", "y", "z", "w"])
            } else {
                ("float", &[""])
            };
            let f = if vector { "apply4" } else { "apply1" };
            let _ = writeln!(
                s,
                "  static __device__ __forceinline__ {ty} {f}({ty} v, long long n, int c, int p, const float* __restrict__ bias, const float* __restrict__ res) {{"
            );
            let lane = |l: &str| {
                if l.is_empty() {
                    "v".to_string()
                } else {
                    format!("v.{l}")
                }
            };
            let each = |f: &dyn Fn(&str) -> String| {
                lanes
                    .iter()
                    .map(|l| f(&lane(l)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            if self.bias {
                let _ = writeln!(s, "    const float b = __ldg(bias + c);");
                let _ = writeln!(s, "    {}", each(&|v| format!("{v} += b;")));
            }
            for step in &self.epilogue {
                match step {
                    EpiStep::AddDirect => {
                        if vector {
                            let _ = writeln!(
                                s,
                                "    {{ const float4 r = __ldg(reinterpret_cast<const float4*>(res + (n * {} + c) * {p} + p));",
                                self.cout
                            );
                            let _ = writeln!(
                                s,
                                "      v.x += r.x; v.y += r.y; v.z += r.z; v.w += r.w; }}"
                            );
                        } else {
                            let _ = writeln!(
                                s,
                                "    v += __ldg(res + (n * {} + c) * {p} + p);",
                                self.cout
                            );
                        }
                    }
                    EpiStep::AddSubsampled {
                        channels,
                        h,
                        w,
                        stride,
                        pad,
                    } => {
                        let _ = writeln!(s, "    if (c >= {pad} && c < {}) {{", pad + channels);
                        let _ = writeln!(
                            s,
                            "      const float* r = res + (n * {channels} + (c - {pad})) * {};",
                            h * w
                        );
                        for (q, l) in lanes.iter().enumerate() {
                            let _ = writeln!(
                                s,
                                "      {} += __ldg(r + ((p + {q}) / {ow}) * {} + ((p + {q}) % {ow}) * {stride});",
                                lane(l),
                                stride * w,
                                ow = self.ow
                            );
                        }
                        let _ = writeln!(s, "    }}");
                    }
                    EpiStep::Relu => {
                        // Not fmaxf, which returns 0 for NaN: NaN stays NaN as in PyTorch.
                        let _ = writeln!(
                            s,
                            "    {}",
                            each(&|v| format!("{v} = {v} < 0.0f ? 0.0f : {v};"))
                        );
                    }
                }
            }
            let _ = writeln!(s, "    return v;");
            let _ = writeln!(s, "  }}");
        }
        let _ = writeln!(s, "}};");
        let _ = writeln!(
            s,
            "extern \"C\" __global__ void __launch_bounds__({}) {name}(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, const float* __restrict__ res, float* __restrict__ y, int batch) {{",
            t.threads()
        );
        let _ = writeln!(
            s,
            "  rnc::conv<{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {name}_epi>(x, w, bias, res, y, {}, {});",
            self.cin,
            self.h,
            self.w,
            self.cout,
            self.coutp,
            self.oh,
            self.ow,
            self.kernel[0],
            self.kernel[1],
            self.stride[0],
            self.stride[1],
            self.pad[0],
            self.pad[1],
            t.bm,
            t.bn,
            t.bk,
            t.tm,
            t.tn,
            WARP_M,
            batch_expr(self.batch),
            self.taps
        );
        let _ = writeln!(s, "}}");
        s
    }
}

impl HeadKernel {
    pub fn describe(&self) -> String {
        format!(
            "head {}{}x{} -> gemm {} alpha={} beta={}{}",
            if self.pool { "avgpool " } else { "" },
            self.channels,
            self.pixels,
            self.nout,
            self.alpha,
            self.beta,
            if self.bias { " +bias" } else { "" }
        )
    }

    pub fn emit(&self, name: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "// {}; one block of {} threads per image",
            self.describe(),
            self.threads
        );
        let _ = writeln!(
            s,
            "extern \"C\" __global__ void __launch_bounds__({t}) {name}(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, float* __restrict__ y, int batch) {{",
            t = self.threads
        );
        // Every block is one image (grid.x == batch), so `batch` needs no check.
        let _ = writeln!(s, "  (void)batch;");
        let _ = writeln!(
            s,
            "  rnc::head<{}, {}, {}, {}, {}, {}>(x, w, bias, y, {}, {});",
            self.channels,
            self.pixels,
            self.pool,
            self.nout,
            self.threads,
            self.bias,
            self.alpha,
            self.beta
        );
        let _ = writeln!(s, "}}");
        s
    }
}
