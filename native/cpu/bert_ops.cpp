// CPU BERT encoder and optimiser ops (ops/encoder.h and ops/optim.h hold the formulas and conventions).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bf16_arrays.h"
#include "clones.h"
#include "column_sums.h"
#include "common/adamw.h"
#include "common/bf16.h"
#include "common/embedding_runs.h"
#include "dropout_span.h"
#include "exp_nonpositive.h"
#include "gelu.h"
#include "gemm.h"
#include "ops.h"
#include "parallel.h"
#include "scratch.h"
#include "uniforms.h"

namespace simcsepp::cpu {

namespace {

constexpr int64_t kElemGrain = 1 << 14;  // elements per chunk for element-wise ops
constexpr int64_t kColGrain = 32;        // columns per chunk for column-parallel reductions

// Rows per chunk so that a chunk holds about kElemGrain elements.
int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kElemGrain / std::max<int64_t>(1, cols)); }

// A grow-only per-thread scratch buffer.
template <class T>
T* scratch(std::vector<T>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// Element-wise map over [0, n): out[i] = f(i).
template <class F>
void for_each_elem(int64_t n, F&& f) {
  parallel_for(n, kElemGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Embeddings

void embedding_forward(float* out, const int32_t* ids, const int32_t* posIds, const int32_t* typeIds, const float* word,
                       const float* pos, const float* type, int64_t BT, int64_t H) {
  parallel_for(BT, row_grain(H), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* w = word + static_cast<int64_t>(ids[r]) * H;
      const float* p = pos + static_cast<int64_t>(posIds[r]) * H;
      const float* t = type + static_cast<int64_t>(typeIds[r]) * H;
      float* o = out + r * H;
      for (int64_t c = 0; c < H; ++c) o[c] = w[c] + p[c] + t[c];
    }
  });
}

namespace {

// A table's rows grouped by id (common/embedding_runs.h): order lists the rows, groups the (id, begin, end) slices.
struct EmbeddingGroups {
  std::vector<uint64_t> keys;
  std::vector<int32_t> order;
  std::vector<int64_t> groups;  // id, begin, end, repeated
};

// Columns [c0, c1) of one table's gradient, in embedding_runs.h's order: each run of a group summed left to right
// from its first row into s, then added to the table row. Cloned per instruction set (inside the pool's lambda the
// row adds got the baseline's SSE2).
SIMCSEPP_CLONES void embedding_backward_columns(float* table, const EmbeddingGroups& g, const float* dout, int64_t H,
                                                int64_t c0, int64_t c1, float* s) {
  const int32_t* order = g.order.data();
  for (size_t k = 0; k < g.groups.size(); k += 3) {
    float* dst = table + g.groups[k] * H;
    const int64_t begin = g.groups[k + 1], end = g.groups[k + 2];
    for (int64_t r0 = begin; r0 < end; r0 += kEmbeddingRun) {
      const int64_t r1 = std::min(end, r0 + kEmbeddingRun);
      const float* first = dout + static_cast<int64_t>(order[r0]) * H;
      for (int64_t c = c0; c < c1; ++c) s[c - c0] = first[c];
      for (int64_t r = r0 + 1; r < r1; ++r) {
        const float* src = dout + static_cast<int64_t>(order[r]) * H;
        for (int64_t c = c0; c < c1; ++c) s[c - c0] += src[c];
      }
      for (int64_t c = c0; c < c1; ++c) dst[c] += s[c - c0];
    }
  }
}

}  // namespace

void embedding_backward(float* dword, float* dpos, float* dtype, const float* dout, const int32_t* ids,
                        const int32_t* posIds, const int32_t* typeIds, int64_t BT, int64_t H) {
  // Grow-only per thread: nothing allocated once a shape has been seen.
  thread_local EmbeddingGroups mine[3];
  EmbeddingGroups* const groups = mine;  // the pool's threads read this thread's groups, not their own
  float* const tables[3] = {dword, dpos, dtype};
  const int32_t* const idArrays[3] = {ids, posIds, typeIds};
  for (int k = 0; k < 3; ++k) {
    if (tables[k] == nullptr) continue;
    EmbeddingGroups& g = groups[k];
    g.groups.clear();
    group_rows_by_id(idArrays[k], BT, g.keys, g.order, [&](int32_t id, int64_t begin, int64_t end) {
      g.groups.insert(g.groups.end(), {static_cast<int64_t>(id), begin, end});
    });
  }
  // Each chunk owns columns [c0, c1) of every table, so repeated ids never race; the order of the adds is fixed
  // (embedding_runs.h), so the result is deterministic and the CUDA backend's.
  parallel_for(H, kColGrain, [&](int64_t c0, int64_t c1) {
    float* s = thread_scratch<EmbeddingGroups, float>(0, c1 - c0);
    for (int k = 0; k < 3; ++k)
      if (tables[k] != nullptr) embedding_backward_columns(tables[k], groups[k], dout, H, c0, c1, s);
  });
}

// ---------------------------------------------------------------------------------------------
// Layer norm

namespace {

// The sum over c < C of term(c) in 8 partial sums, added in a fixed order: lane l sums the c = l mod 8 below the
// last whole 8 in order, the rest are summed left to right, then the lanes and that tail are combined as below. The
// result does not depend on the instruction set; only the association differs from a left-to-right sum.
// term is written once for both forms: it gets `at`, which reads one of its float arrays as lanes of Acc at c
// (vector code) or as the one Acc at c (the tail), e.g. [&](auto at) { return at(g) * at(w); }. Written with
// scalars per lane, GCC's vectoriser turned these loops into shuffles and scalar adds.
// The lanes are held in 32-byte vectors: 8 floats, or 4 doubles twice (term runs once per half). One 64-byte vector
// of doubles is one AVX-512 register, but GCC's AVX2 clone kept it in memory, storing and reloading the sums at
// every step: layernorm_row took 4 ns an element on a 2-vCPU AMD EPYC VM, 0.7 ns with the halves (one thread).
// The lambdas pass vectors by value; they are inlined into the instruction set's clone, so the calling convention
// GCC warns about (-Wpsabi: it differs between instruction sets) never applies.
#pragma GCC diagnostic ignored "-Wpsabi"
template <class Acc, class Term>
inline Acc sum8(int64_t C, Term&& term) {
  typedef Acc V __attribute__((vector_size(32)));
  Acc lane[8];
  int64_t c = 0;
  if constexpr (sizeof(Acc) == 4) {
    V acc = {};
    for (; c + 8 <= C; c += 8)
      acc += term([&](const float* p) {
        V v;
        std::memcpy(&v, p + c, sizeof v);
        return v;
      });
    for (int l = 0; l < 8; ++l) lane[l] = acc[l];
  } else {
    typedef float V4f __attribute__((vector_size(16)));
    const auto at = [&](int64_t from) {
      return [&, from](const float* p) {
        V4f v;
        std::memcpy(&v, p + from, sizeof v);
        return __builtin_convertvector(v, V);
      };
    };
    V lo = {}, hi = {};  // lanes 0-3 and 4-7
    for (; c + 8 <= C; c += 8) {
      lo += term(at(c));
      hi += term(at(c + 4));
    }
    for (int l = 0; l < 4; ++l) {
      lane[l] = lo[l];
      lane[l + 4] = hi[l];
    }
  }
  Acc tail = 0;
  for (; c < C; ++c) tail += term([&](const float* p) { return static_cast<Acc>(p[c]); });
  return (((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]))) + tail;
}

// One row of a layer norm's output from its statistics (the forward's and layernorm_apply's one loop, so the
// same bits). o may alias x.
SIMCSEPP_CLONES void layernorm_apply_row(float* o, const float* x, float m, float rs, const float* weight,
                                         const float* bias, int64_t C) {
  for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - m) * rs * weight[c] + bias[c];
}

// One row of layer norm: both moments in double, the variance two-pass (no E[x^2] - mean^2 cancellation).
// o may alias x: each x[c] is read before o[c] is written.
SIMCSEPP_CLONES void layernorm_row(float* o, float* mean, float* rstd, const float* x, const float* weight,
                                   const float* bias, int64_t C, float eps) {
  const double mu = sum8<double>(C, [&](auto at) { return at(x); }) / static_cast<double>(C);
  const double ss = sum8<double>(C, [&](auto at) { return (at(x) - mu) * (at(x) - mu); });
  const float m = static_cast<float>(mu);
  const float rs = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(C) + eps));
  layernorm_apply_row(o, x, m, rs, weight, bias, C);
  *mean = m;
  *rstd = rs;
}

// One row of dinp (rows are independent): d = rstd * (g * w - mean(g * w) - n * mean(g * w * n)).
SIMCSEPP_CLONES void layernorm_dinp_row(float* d, const float* g, const float* x, const float* weight, float m,
                                        float rs, int64_t C) {
  const float sg = sum8<float>(C, [&](auto at) { return at(g) * at(weight); });
  const float sgn = sum8<float>(C, [&](auto at) { return at(g) * at(weight) * ((at(x) - m) * rs); });
  const float mg = sg / static_cast<float>(C), mgn = sgn / static_cast<float>(C);
  for (int64_t c = 0; c < C; ++c) d[c] = rs * (g[c] * weight[c] - mg - (x[c] - m) * rs * mgn);
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t R, int64_t C, float eps) {
  parallel_for(R, row_grain(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) layernorm_row(out + r * C, mean + r, rstd + r, inp + r * C, weight, bias, C, eps);
  });
}

void layernorm_apply(float* out, const float* inp, const float* mean, const float* rstd, const float* weight,
                     const float* bias, int64_t R, int64_t C) {
  parallel_for(R, row_grain(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) layernorm_apply_row(out + r * C, inp + r * C, mean[r], rstd[r], weight, bias, C);
  });
}

namespace {

// One row's terms of the parameter sums: sw[c] += g * n (n = (x - m) * rs in float, as the forward formed
// it; the product of two floats is exact in double), sb[c] += g.
SIMCSEPP_CLONES void layernorm_param_row(double* __restrict__ sw, double* __restrict__ sb, const float* __restrict__ g,
                                         const float* __restrict__ x, float m, float rs, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    sw[c] += static_cast<double>(g[c]) * ((x[c] - m) * rs);
    sb[c] += g[c];
  }
}

// The backward's pass over the rows: row r's terms of dweight = sum_r dout * n and dbias = sum_r dout are
// added, then row_fn(r) writes the row's input gradient (which may overwrite dout's row) while the row is
// still in cache, so dout and inp are read from memory once. The sums are doubles over fixed row blocks
// (column_sums.h): the result does not depend on the thread count.
template <class RowFn>
void layernorm_backward_rows(float* dweight, float* dbias, const float* dout, const float* inp, const float* mean,
                             const float* rstd, int64_t R, int64_t C, RowFn&& row_fn) {
  const double* s = blocked_column_sums(R, 2 * C, [&](int64_t r0, int64_t r1, double* acc) {
    for (int64_t r = r0; r < r1; ++r) {
      layernorm_param_row(acc, acc + C, dout + r * C, inp + r * C, mean[r], rstd[r], C);
      row_fn(r);
    }
  });
  for (int64_t c = 0; c < C; ++c) {
    if (dweight) dweight[c] += static_cast<float>(s[c]);
    if (dbias) dbias[c] += static_cast<float>(s[C + c]);
  }
}

}  // namespace

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t R, int64_t C) {
  layernorm_backward_rows(dweight, dbias, dout, inp, mean, rstd, R, C, [&](int64_t r) {
    if (dinp) layernorm_dinp_row(dinp + r * C, dout + r * C, inp + r * C, weight, mean[r], rstd[r], C);
  });
}

namespace {

// The hidden dropout of one row r of C elements (TokenDropout): y' = u >= p ? v * scale : 0 with u the
// row's uniforms, cpu::dropout's arithmetic, or v itself when the row's sentence is kept whole.
struct RowDropout {
  const TokenDropout& d;
  float scale;
  explicit RowDropout(const TokenDropout& drop) : d(drop), scale(drop.p < 1.0f ? 1.0f / (1.0f - drop.p) : 0.0f) {}
  // The row's uniforms into u (C floats), or false when the row is not dropped.
  bool uniforms(int64_t r, int64_t C, float* u) const {
    if (d.p <= 0.0f || (d.keepRows != nullptr && d.keepRows[r / d.T] == 0)) return false;
    const uint64_t token = static_cast<uint64_t>(d.rowIndex.at(r / d.T) * d.T + r % d.T);
    bulk_dropout_uniforms(d.seed, d.offset, token * static_cast<uint64_t>(C), C, u);
    return true;
  }
};

// r = dropout(y) + x (u null: y + x) over one row, cloned per instruction set like dropout_span (inside the
// pool's lambda the loop got only the baseline's SSE2).
SIMCSEPP_CLONES void dropout_residual_row(float* r, const float* y, const float* x, const float* u, float p,
                                          float scale, int64_t C) {
  if (u)
    for (int64_t c = 0; c < C; ++c) r[c] = (u[c] >= p ? y[c] * scale : 0.0f) + x[c];
  else
    for (int64_t c = 0; c < C; ++c) r[c] = y[c] + x[c];
}

}  // namespace

// Row by row, each row in cache once: res = dropout(y) + x, then layer norm, with exactly the float
// operations of dropout, add_inplace and layernorm_forward in sequence (the CPU is the reference, and
// equals that sequence bit for bit).
void residual_layernorm_forward(float* out, float* res, float* mean, float* rstd, const float* y, const float* x,
                                const float* weight, const float* bias, int64_t R, int64_t C, float eps,
                                const TokenDropout& drop, const LayerNormInput* xInput, float* outBf16, bool yBf16) {
  const RowDropout rd(drop);
  auto* const kept = reinterpret_cast<uint16_t*>(outBf16);  // bf16 bits, element i at kept[i]
  const auto* const y16 = yBf16 ? reinterpret_cast<const uint16_t*>(y) : nullptr;
  parallel_for(R, row_grain(C), [&](int64_t r0, int64_t r1) {
    thread_local std::vector<float> buf, xbuf, ybuf;
    float* u = scratch(buf, static_cast<size_t>(C));
    for (int64_t r = r0; r < r1; ++r) {
      const float* yr = y + r * C;
      if (y16 != nullptr) {  // the row's bf16 values as floats (exact)
        float* ys = scratch(ybuf, static_cast<size_t>(C));
        for (int64_t c = 0; c < C; ++c) ys[c] = bf16_value(y16[r * C + c]);
        yr = ys;
      }
      const float* xr = x != nullptr ? x + r * C : nullptr;
      if (xInput != nullptr) {  // x's row recomputed with layernorm_apply's bits
        const LayerNormInput& ln = *xInput;
        float* xs = scratch(xbuf, static_cast<size_t>(C));
        layernorm_apply_row(xs, ln.x + r * C, ln.mean[r], ln.rstd[r], ln.weight, ln.bias, C);
        xr = xs;
      }
      float* rr = res + r * C;
      dropout_residual_row(rr, yr, xr, rd.uniforms(r, C, u) ? u : nullptr, drop.p, rd.scale, C);
      layernorm_row(out + r * C, mean + r, rstd + r, rr, weight, bias, C, eps);
      if (kept != nullptr)
        for (int64_t c = 0; c < C; ++c) kept[r * C + c] = bf16_bits(out[r * C + c]);
    }
  });
}

// Row by row: the row's parameter terms, dres and, through the regenerated mask, dy (layernorm_backward then
// dropout, bit for bit), each row read from memory once.
void layernorm_dropout_backward(float* dres, float* dy, float* dweight, float* dbias, const float* dout,
                                const float* res, const float* weight, const float* mean, const float* rstd, int64_t R,
                                int64_t C, const TokenDropout& drop, float* dyColumnSums) {
  const RowDropout rd(drop);
  layernorm_backward_rows(dweight, dbias, dout, res, mean, rstd, R, C, [&](int64_t r) {
    float* d = dres + r * C;
    layernorm_dinp_row(d, dout + r * C, res + r * C, weight, mean[r], rstd[r], C);
    if (dy == nullptr) return;
    thread_local std::vector<float> buf;
    float* u = scratch(buf, static_cast<size_t>(C));
    float* o = dy + r * C;
    if (rd.uniforms(r, C, u))
      dropout_span(o, d, u, drop.p, rd.scale, C);
    else
      for (int64_t c = 0; c < C; ++c) o[c] = d[c];
  });
  if (dyColumnSums != nullptr) column_sums_add(dyColumnSums, dy != nullptr ? dy : dres, R, C);  // a pass of its own
}

// ---------------------------------------------------------------------------------------------
// Linear (torch layout: weight [OC, C])

namespace {

// The scratch of the linear ops (scratch.h: grown once, reused by every call), by slot.
struct LinearScratchTag {};
constexpr int kInputSlot = 0;       // a bf16 inp, as floats
constexpr int kGeluInputSlot = 1;   // a bf16 geluInput, as floats
constexpr int kRecomputedSlot = 2;  // GELU(geluInput) or the LayerNorm's output, when there is no inp
constexpr int kProductSlot = 3;     // an fp32 product stored in bf16 after its epilogue (no geluOut to hold it)

// The n bf16 values stored at x16 (LinearBf16), as floats (exact) in the scratch slot's buffer.
const float* unpack_bf16(const float* x16, int64_t n, int slot) {
  float* x = thread_scratch<LinearScratchTag, float>(slot, n);
  bf16_to_floats(x, x16, n);
  return x;
}

}  // namespace

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C,
                    int64_t OC, Precision precision, float* geluOut, LinearBf16 bf16) {
  // bf16: the operands rounded, the product in fp32 (the CUDA backend's tensor-core GEMM computes the same).
  // The bias and the GELU are the GEMM's epilogue: applied to each tile of out while it is in L1.
  if (bf16.inp) inp = unpack_bf16(inp, R * C, kInputSlot);
  GemmEpilogue ep;
  ep.bias = bias;
  if (bf16.out) {
    // The product (with its bias) into geluOut, whose memory is free until the GELU writes it (else into scratch);
    // the epilogue rounds each tile to bf16 into out's storage (and GELUs the rounded values in place), while the
    // tile is in L1.
    // A bf16 geluOut (bf16.geluOut): the GELU into scratch too, then rounded into geluOut's storage.
    float* product =
        geluOut != nullptr && !bf16.geluOut ? geluOut : thread_scratch<LinearScratchTag, float>(kProductSlot, R * OC);
    ep.bf16_out = reinterpret_cast<uint16_t*>(out);
    ep.ld_bf16_out = OC;
    ep.gelu_out = geluOut != nullptr ? product : nullptr;
    ep.ld_gelu_out = OC;
    sgemm_fused(precision == Precision::kBf16, false, true, R, OC, C, 1.0f, inp, C, weight, C, 0.0f, product, OC, ep);
    if (bf16.geluOut) floats_to_bf16(geluOut, product, R * OC);
    return;
  }
  ep.gelu_out = geluOut;
  ep.ld_gelu_out = OC;
  sgemm_fused(precision == Precision::kBf16, false, true, R, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC, ep);
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t R, int64_t C, int64_t OC, bool accumulateInput, Precision precision,
                     const float* geluInput, const LayerNormInput* layerNormInput, float* dinpColumnSums,
                     LinearBf16 bf16) {
  // Stored bf16 values as floats (exact), then as fp32 arrays.
  if (bf16.geluInput) geluInput = unpack_bf16(geluInput, R * C, kGeluInputSlot);
  if (bf16.inp && inp != nullptr && dweight != nullptr) inp = unpack_bf16(inp, R * C, kInputSlot);
  // dbias (fp32 at every precision: not a matrix product) is the row sums of dout^T, the weight gradient's op(A):
  // summed from its packed panels where there is one, else in a pass of its own.
  if (dbias && !dweight) column_sums_add(dbias, dout, R, OC);
  const bool isBf16 = precision == Precision::kBf16;
  GemmEpilogue ep;  // the GELU's derivative, on each tile of dinp while it is in L1
  ep.gelu_grad_x = geluInput;
  ep.ld_gelu_grad_x = C;
  ep.round_before_gelu_grad = isBf16;  // at bf16 GELU' multiplies the product rounded to bf16 (ops/encoder.h)
  float* product = dinp;
  if (dinp && bf16.out) {  // the product into scratch, each tile rounded into dinp's storage as it is finished
    product = thread_scratch<LinearScratchTag, float>(kProductSlot, R * C);
    ep.bf16_out = reinterpret_cast<uint16_t*>(dinp);
    ep.ld_bf16_out = C;
  }
  if (dinp)
    sgemm_fused(isBf16, false, false, R, C, OC, 1.0f, dout, OC, weight, C, accumulateInput ? 1.0f : 0.0f, product, C,
                ep);
  if (dinpColumnSums) column_sums_add(dinpColumnSums, dinp, R, C);  // a pass of its own (BertModel sums in the GEMM)
  if (dweight) {
    if (inp == nullptr) {  // recomputed: GELU(geluInput) with gelu_forward's bits, or the LayerNorm's output
      float* act = thread_scratch<LinearScratchTag, float>(kRecomputedSlot, R * C);
      if (layerNormInput != nullptr) {
        const LayerNormInput& ln = *layerNormInput;
        layernorm_apply(act, ln.x, ln.mean, ln.rstd, ln.weight, ln.bias, R, C);
      } else {
        gelu_forward(act, geluInput, R * C);
      }
      inp = act;
    }
    GemmEpilogue wep;
    wep.a_row_sums = dbias;
    sgemm_fused(isBf16, true, false, OC, C, R, 1.0f, dout, OC, inp, C, 1.0f, dweight, C, wep);
  }
}

// ---------------------------------------------------------------------------------------------
// Element-wise

namespace {

// The standard normal CDF Φ(x) = erfc(-x/√2)/2 without cancellation in either tail: with y = |x|/√2,
// erfc(y) = exp(-y²) R(y), and R(y) = erfc(y) e^(y²) = t P(t), t = 1/(1 + 0.7 y), P of degree 10 fitted
// to minimise the relative error on [0, 9.5] (weighted least squares against 30-digit values; largest
// relative error of R evaluated in float: 2.5e-7). Φ = erfc/2 for x < 0, 1 - erfc/2 for x >= 0.
// *gauss receives exp(-y²) = exp(-x²/2), which is √(2π) φ(x): GELU's derivative reuses it.
// e^a for a <= 0: exp_nonpositive.h's algorithm with its multiply-adds fused (__builtin_fmaf, exactly rounded:
// the same bits in every instruction-set version of the GELU loops below, where it is a single instruction).
inline float exp_fma(float a) {
  a = a < -104.0f ? -104.0f : a;
  constexpr float kRound = 12582912.0f;
  const float n = __builtin_fmaf(a, 1.44269504088896341f, kRound) - kRound;
  const float r = __builtin_fmaf(n, -1.42860682030941723e-06f, __builtin_fmaf(n, -0.693145751953125f, a));
  float p = 1.0f / 5040.0f;
  p = __builtin_fmaf(p, r, 1.0f / 720.0f);
  p = __builtin_fmaf(p, r, 1.0f / 120.0f);
  p = __builtin_fmaf(p, r, 1.0f / 24.0f);
  p = __builtin_fmaf(p, r, 1.0f / 6.0f);
  p = __builtin_fmaf(p, r, 0.5f);
  p = __builtin_fmaf(p, r, 1.0f);
  p = __builtin_fmaf(p, r, 1.0f);
  int32_t e = static_cast<int32_t>(n) + 127;
  const int32_t bits = (e > 0 ? e : 0) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float normal_cdf(float x, float* gauss) {
  const float y = std::fabs(x) * 0.70710678118654752f;
  const float t = 1.0f / __builtin_fmaf(0.7f, y, 1.0f);
  float p = -7.733622193e-02f;
  p = __builtin_fmaf(p, t, 3.812674284e-01f);
  p = __builtin_fmaf(p, t, -6.698693037e-01f);
  p = __builtin_fmaf(p, t, 2.857763767e-01f);
  p = __builtin_fmaf(p, t, 5.951248407e-01f);
  p = __builtin_fmaf(p, t, -7.743285894e-01f);
  p = __builtin_fmaf(p, t, 1.149000227e-01f);
  p = __builtin_fmaf(p, t, 4.900741950e-02f);
  p = __builtin_fmaf(p, t, 3.062080443e-01f);
  p = __builtin_fmaf(p, t, 3.942959905e-01f);
  p = __builtin_fmaf(p, t, 3.949539661e-01f);
  const float e = exp_fma(-0.5f * x * x);  // exp(-y²), its argument rounded once (not y's rounding squared)
  *gauss = e;
  const float halfErfc = 0.5f * t * p * e;
  return x < 0.0f ? halfErfc : 1.0f - halfErfc;
}

// The element loops, written once (always inlined) and compiled per instruction set: AVX-512, AVX2 with FMA,
// and the baseline, picked once at load time. Not target_clones: its AVX2 version would lack FMA and call libm's
// fmaf for each __builtin_fmaf. Every version computes the same bits (the fused multiply-adds are exactly
// rounded everywhere; the baseline's are libm calls, slow but equal).
inline __attribute__((always_inline)) void gelu_forward_loop(float* out, const float* inp, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    float gauss;
    out[i] = inp[i] * normal_cdf(inp[i], &gauss);
  }
}

inline __attribute__((always_inline)) void gelu_backward_loop(float* dinp, const float* inp, const float* dout,
                                                              int64_t b, int64_t e) {
  constexpr float kInvSqrt2Pi = 0.39894228040143268f;
  for (int64_t i = b; i < e; ++i) {
    const float x = inp[i];
    float gauss;  // exp(-x²/2), from the CDF's own exponential (one exp per element, not two)
    const float cdf = normal_cdf(x, &gauss);
    dinp[i] = dout[i] * (cdf + x * kInvSqrt2Pi * gauss);
  }
}

void gelu_forward_baseline(float* out, const float* inp, int64_t b, int64_t e) { gelu_forward_loop(out, inp, b, e); }
void gelu_backward_baseline(float* dinp, const float* inp, const float* dout, int64_t b, int64_t e) {
  gelu_backward_loop(dinp, inp, dout, b, e);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f"))) void gelu_forward_avx512(float* out, const float* inp, int64_t b, int64_t e) {
  gelu_forward_loop(out, inp, b, e);
}
__attribute__((target("avx2,fma"))) void gelu_forward_avx2(float* out, const float* inp, int64_t b, int64_t e) {
  gelu_forward_loop(out, inp, b, e);
}
__attribute__((target("avx512f"))) void gelu_backward_avx512(float* dinp, const float* inp, const float* dout,
                                                             int64_t b, int64_t e) {
  gelu_backward_loop(dinp, inp, dout, b, e);
}
__attribute__((target("avx2,fma"))) void gelu_backward_avx2(float* dinp, const float* inp, const float* dout, int64_t b,
                                                            int64_t e) {
  gelu_backward_loop(dinp, inp, dout, b, e);
}
#else  // one build (aarch64's baseline has FMA and vectors): gelu_isa() is 0
constexpr auto gelu_forward_avx512 = gelu_forward_baseline, gelu_forward_avx2 = gelu_forward_baseline;
constexpr auto gelu_backward_avx512 = gelu_backward_baseline, gelu_backward_avx2 = gelu_backward_baseline;
#endif

// The version that runs: SIMCSEPP_GELU_KERNEL ("avx512", "avx2" or "baseline", when this CPU has it), else the
// widest this CPU has. 2 = AVX-512, 1 = AVX2 with FMA, 0 = baseline.
int gelu_isa() {
  static const int isa = [] {
#if defined(__x86_64__) || defined(__i386__)
    const bool avx512 = __builtin_cpu_supports("avx512f"),
               avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    const bool avx512 = false, avx2 = false;
#endif
    const char* forced = std::getenv("SIMCSEPP_GELU_KERNEL");
    if (forced != nullptr && std::strcmp(forced, "baseline") == 0) return 0;
    if (forced != nullptr && std::strcmp(forced, "avx2") == 0 && avx2) return 1;
    if (forced != nullptr && std::strcmp(forced, "avx512") == 0 && avx512) return 2;
    return avx512 ? 2 : avx2 ? 1 : 0;
  }();
  return isa;
}

void gelu_forward_range(float* out, const float* inp, int64_t b, int64_t e) {
  static const auto fn = gelu_isa() == 2   ? gelu_forward_avx512
                         : gelu_isa() == 1 ? gelu_forward_avx2
                                           : gelu_forward_baseline;
  fn(out, inp, b, e);
}

void gelu_backward_range(float* dinp, const float* inp, const float* dout, int64_t b, int64_t e) {
  static const auto fn = gelu_isa() == 2   ? gelu_backward_avx512
                         : gelu_isa() == 1 ? gelu_backward_avx2
                                           : gelu_backward_baseline;
  fn(dinp, inp, dout, b, e);
}

}  // namespace

const char* gelu_kernel_name() {
  static const char* const names[] = {"baseline", "avx2", "avx512"};
  return names[gelu_isa()];
}

void gelu_forward_span(float* out, const float* x, int64_t n) { gelu_forward_range(out, x, 0, n); }

void gelu_backward_span(float* dinp, const float* x, const float* dout, int64_t n) {
  gelu_backward_range(dinp, x, dout, 0, n);
}

// GELU(x) = x Φ(x) (the exact, erf-based GELU), through normal_cdf: float accuracy, vectorised.
void gelu_forward(float* out, const float* inp, int64_t n) {
  parallel_for(n, kElemGrain, [&](int64_t b, int64_t e) { gelu_forward_range(out, inp, b, e); });
}

// dGELU/dx = Φ(x) + x φ(x).
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
  parallel_for(n, kElemGrain, [&](int64_t b, int64_t e) { gelu_backward_range(dinp, inp, dout, b, e); });
}

void tanh_forward(float* out, const float* inp, int64_t n) {
  for_each_elem(n, [&](int64_t i) { out[i] = std::tanh(inp[i]); });
}

void tanh_backward(float* dinp, const float* out, const float* dout, int64_t n) {
  for_each_elem(n, [&](int64_t i) {
    const float y = out[i];
    dinp[i] = dout[i] * (1.0f - y * y);
  });
}

void add(float* out, const float* a, const float* b, int64_t n) {
  for_each_elem(n, [&](int64_t i) { out[i] = a[i] + b[i]; });
}

void add_inplace(float* dst, const float* src, int64_t n) {
  for_each_elem(n, [&](int64_t i) { dst[i] += src[i]; });
}

void scale_inplace(float* x, float s, int64_t n) {
  for_each_elem(n, [&](int64_t i) { x[i] *= s; });
}

// ---------------------------------------------------------------------------------------------
// Pooling

void pool_cls_forward(float* out, const float* hidden, int64_t B, int64_t T, int64_t H) {
  parallel_for(B, row_grain(H), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) std::copy(hidden + b * T * H, hidden + b * T * H + H, out + b * H);
  });
}

void pool_cls_backward(float* dhidden, const float* dout, int64_t B, int64_t T, int64_t H, bool accumulate) {
  parallel_for(B, row_grain(T * H), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      float* dh = dhidden + b * T * H;
      const float* g = dout + b * H;
      if (accumulate) {
        for (int64_t c = 0; c < H; ++c) dh[c] += g[c];
      } else {
        std::copy(g, g + H, dh);
        std::fill(dh + H, dh + T * H, 0.0f);
      }
    }
  });
}

namespace {

int64_t real_tokens(const int32_t* mask, int64_t T) {
  int64_t n = 0;
  for (int64_t t = 0; t < T; ++t) n += mask[t] != 0;
  return n;
}

// The mean's divisor's reciprocal: 1/n, or 1/sqrt(n) for mean_sqrt_len (both IEEE-rounded, as the CUDA kernel's).
float mean_scale(int64_t n, bool sqrt_len) {
  if (n == 0) return 0.0f;
  const float count = static_cast<float>(n);
  return 1.0f / (sqrt_len ? std::sqrt(count) : count);
}

}  // namespace

void pool_mean_forward(float* out, const float* hidden, const int32_t* mask, int64_t B, int64_t T, int64_t H,
                       bool sqrt_len) {
  parallel_for(B, row_grain(T * H), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      float* o = out + b * H;
      std::fill(o, o + H, 0.0f);
      const int64_t n = real_tokens(mask + b * T, T);
      if (n == 0) continue;
      for (int64_t t = 0; t < T; ++t) {
        if (mask[b * T + t] == 0) continue;
        const float* x = hidden + (b * T + t) * H;
        for (int64_t c = 0; c < H; ++c) o[c] += x[c];
      }
      const float inv = mean_scale(n, sqrt_len);
      for (int64_t c = 0; c < H; ++c) o[c] *= inv;
    }
  });
}

void pool_mean_backward(float* dhidden, const float* dout, const int32_t* mask, int64_t B, int64_t T, int64_t H,
                        bool accumulate, bool sqrt_len) {
  parallel_for(B, row_grain(T * H), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = real_tokens(mask + b * T, T);
      const float inv = mean_scale(n, sqrt_len);
      const float* g = dout + b * H;
      for (int64_t t = 0; t < T; ++t) {
        float* dh = dhidden + (b * T + t) * H;
        const bool real = mask[b * T + t] != 0;
        if (accumulate) {
          if (real)
            for (int64_t c = 0; c < H; ++c) dh[c] += g[c] * inv;
        } else {
          for (int64_t c = 0; c < H; ++c) dh[c] = real ? g[c] * inv : 0.0f;
        }
      }
    }
  });
}

namespace {

// Whether x takes the maximum's place from top: strictly greater, or the first NaN (torch.max's choice: ties keep the
// first token, a NaN propagates). The CUDA kernels decide with the same test, in the same token order.
inline bool beats(float x, float top) { return x > top || (std::isnan(x) && !std::isnan(top)); }

// The first real token of sentence b (mask row m) holding column c's maximum, or -1 when the sentence has no real
// token.
int64_t max_token(const float* hidden, const int32_t* m, int64_t T, int64_t H, int64_t c) {
  int64_t best = -1;
  for (int64_t t = 0; t < T; ++t)
    if (m[t] != 0 && (best < 0 || beats(hidden[t * H + c], hidden[best * H + c]))) best = t;
  return best;
}

}  // namespace

void pool_max_forward(float* out, const float* hidden, const int32_t* mask, int64_t B, int64_t T, int64_t H) {
  parallel_for(B, row_grain(T * H), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      // Token rows in order, each column's value replaced as max_token replaces its token: its choice, read row by
      // row.
      float* o = out + b * H;
      const int32_t* m = mask + b * T;
      int64_t t = 0;
      while (t < T && m[t] == 0) ++t;
      if (t == T) {
        std::fill(o, o + H, 0.0f);
        continue;
      }
      std::copy(hidden + (b * T + t) * H, hidden + (b * T + t + 1) * H, o);
      for (++t; t < T; ++t) {
        if (m[t] == 0) continue;
        const float* x = hidden + (b * T + t) * H;
        for (int64_t c = 0; c < H; ++c)
          if (beats(x[c], o[c])) o[c] = x[c];
      }
    }
  });
}

void pool_max_backward(float* dhidden, const float* dout, const float* hidden, const int32_t* mask, int64_t B,
                       int64_t T, int64_t H, bool accumulate) {
  parallel_for(B, row_grain(T * H), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      float* dh = dhidden + b * T * H;
      if (!accumulate) std::fill(dh, dh + T * H, 0.0f);
      for (int64_t c = 0; c < H; ++c) {
        const int64_t t = max_token(hidden + b * T * H, mask + b * T, T, H, c);
        if (t >= 0) dh[t * H + c] += dout[b * H + c];
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Optimiser

namespace {

// AdamW over [b, e), cloned per instruction set: inside the pool's lambda it got the baseline's SSE2, 4 divisions
// and square roots at a time. The operations are IEEE-rounded in every clone (and never fused: -ffp-contract=off),
// so every clone computes the same bits. Each gradient is multiplied by gradScale first (1 when there is none: g * 1
// is g), as clipping in place would have.
SIMCSEPP_CLONES void adamw_range(float* __restrict params, const float* __restrict grads, float* __restrict m,
                                 float* __restrict v, AdamwConstants k, float gradScale, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) adamw_update(k, params[i], m[i], v[i], adamw_mul(grads[i], gradScale));
}

}  // namespace

void adamw_step(float* params, const float* grads, float* m, float* v, int64_t n, double lr, double beta1, double beta2,
                double eps, double weightDecay, int64_t step, const float* gradScale) {
  // The constants as torch forms them (common/adamw.h, shared with the CUDA kernel).
  const AdamwConstants k = adamw_constants(lr, beta1, beta2, eps, weightDecay, step);
  const float s = gradScale != nullptr ? *gradScale : 1.0f;
  parallel_for(n, kElemGrain, [&](int64_t b, int64_t e) { adamw_range(params, grads, m, v, k, s, b, e); });
}

namespace {

// sum_i g[i]^2 in double over one chunk, in sum8's 8 partial sums (vectorised, the same bits on every instruction
// set). A left-to-right sum waited 4 cycles per element on the chain of double adds: 3.5 ms per step for mini's 11M
// parameters on 2 threads.
SIMCSEPP_CLONES double sum_of_squares(const float* g, int64_t n) {
  return sum8<double>(n, [&](auto at) { return at(g) * at(g); });
}

}  // namespace

double grad_sum_squares(const float* g, int64_t n) {
  if (n <= 0) return 0.0;
  const int64_t chunks = (n + kElemGrain - 1) / kElemGrain;
  thread_local std::vector<double> buf;
  double* partial = scratch(buf, static_cast<size_t>(chunks));
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t b = c * kElemGrain;
      partial[c] = sum_of_squares(g + b, std::min(n, b + kElemGrain) - b);
    }
  });
  double total = 0.0;
  for (int64_t c = 0; c < chunks; ++c) total += partial[c];
  return total;
}

}  // namespace simcsepp::cpu
