// The loss ops and selective dropout of the op set (backend.h), on raw row-major float32 buffers: their
// arguments, results and formulas, declared once for every backend. Formulas: docs/method.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/row_index.h"

namespace simcsepp {

// Which input held a NaN, an Inf or a value beyond ±kMaxLossInput (the loss ops detect it while
// normalising and report it instead of returning a poisoned loss). kNone means all inputs were fine.
enum NonFinite : int { kNone = 0, kZ1 = 1, kZ2 = 2, kZ0 = 3, kZ3 = 4 };

struct LossResult {
  double loss = 0.0;      // already multiplied by the op's weight
  int nonFinite = kNone;  // first input found to hold NaN/Inf
};

// Gradient outputs of a loss. Each is [n, d]; `accumulate` adds weight*grad into them instead of
// overwriting, so SimCSE++ = offDropout + 0.1*dcl writes one set of buffers without extra passes.
struct LossGradOut {
  float* gz1 = nullptr;
  float* gz2 = nullptr;
  float* gz0 = nullptr;  // offDropout only
  float* gz3 = nullptr;  // simcse hard negatives only
  bool accumulate = false;
  double weight = 1.0;  // loss is scaled in double, gradients by (float)weight
};

// SimCSE InfoNCE: S_ij = cos(z1_i, z2_j)/tau, with optional hard negatives z3 as extra columns
// [cos(z1_i, z2_j) | cos(z1_i, z3_j)]/tau; L = mean_i(-S_ii + lse_j S_ij).
// z3 may be null; its m rows are every hard negative of the batch (k per example: m = k n, or any
// count), each a column of every row. Writes gz1, gz2 (and gz3, [m, d], when z3 is given).
struct SimcseArgs {
  const float* z1;
  const float* z2;  // [n, d] each
  const float* z3;  // [m, d]
  int64_t n, d;
  float temperature;
  int64_t m = 0;  // rows of z3 (0 when it is null)
};

// Off-dropout InfoNCE: p_i = m*cos(z1_i, z2_i)/tau, K_ij = cos(z0_i, z0_j)/tau (j != i),
// L = mean_i(-p_i + log(exp(p_i) + sum_{j!=i} exp(K_ij))). Writes gz1, gz2, gz0.
struct OffDropoutArgs {
  const float* z1;
  const float* z2;
  const float* z0;  // [n, d] each
  int64_t n, d;
  float temperature;
  float posScale;  // m
};

// DCL: X = BN(z) per column (biased var, eps 1e-5), C = X1^T X2 / (n*tauD) (d x d),
// L = mean_d(-C_dd + lse_k C_dk). Writes gz1, gz2 (through the BN statistics).
struct DclArgs {
  const float* z1;
  const float* z2;  // [n, d] each
  int64_t n, d;
  float temperature;  // tauD
};

// CoSENT over scored pairs (Su 2022; sentence-transformers' CoSENTLoss, whose scale 20 is 1/tau 0.05):
// s_i = sim(z1_i, z2_i)/tau, L = log(1 + sum_{(i,j): y_i < y_j} exp(s_i - s_j)): every pair of pairs whose gold
// scores are ordered is a term, penalised when the similarities disagree with that order. Writes gz1, gz2. scores
// (y, n values) is a host pointer for every backend, as keepRows is (a CUDA step graph binds it).
// sim: the cosine, or (AnglE, Li & Li 2023: sentence-transformers' AnglELoss) the normalised angle similarity
// |x . R y| / (|x| |y|), the vectors split into real and imaginary halves (an odd d padded with a zero), where
// R y = [re(y) - im(y) ; re(y) + im(y)] (the real and imaginary parts of the complex quotient summed).
enum CosentSimilarity : int { kCosine = 0, kAngle = 1 };
struct CosentArgs {
  const float* z1;
  const float* z2;  // [n, d] each
  const float* scores;
  int64_t n, d;
  float temperature;
  int similarity = kCosine;
};

// Distillation (sentence-transformers' MSELoss; Reimers & Gurevych 2020): the mean squared error between the
// student's vectors z [rows, d] and the teacher's, target [n, d], each target row the target of every k-th row of z
// (rows = k n: k views of n sentences, e.g. a source sentence and its translation, both taught the teacher's vector
// of the source):  L = sum_{r,c} (z_rc - t_{r mod n, c})^2 / (rows d),  dL/dz_rc = 2 (z_rc - t_{r mod n, c}) / (rows
// d). target is a host pointer for every backend, as cosent's scores are (a CUDA step graph binds it).
struct MseArgs {
  const float* z;
  const float* target;
  int64_t rows, n, d;
};

// Selective dropout: x viewed as [rows, cols]; rows with keepRows[r] == 0 pass unchanged; other
// elements e = r*cols + c are kept iff philox_uniform(seed, offset, e) >= p and scaled by 1/(1-p).
// keepRows may be null (every row gets dropout); it is a host pointer for every backend.
// The same call applied to an upstream gradient is the backward (the mask is regenerated).
struct DropoutArgs {
  const float* x;
  float* y;
  int64_t rows, cols;
  float p;
  uint64_t seed, offset;
  const uint8_t* keepRows;
  // Where x's rows sit in the whole batch (common/row_index.h): row r of x draws the mask of element
  // rowIndex.at(r) * cols + c, so a micro-batch (or a rank's rows) of a larger batch gets exactly that
  // batch's masks (keepRows is x's own rows).
  RowIndex rowIndex{};
};

constexpr float kBnEps = 1e-5f;
constexpr float kNormEps = 1e-12f;  // |z| is clamped below at this (as torch.nn.functional.normalize)
// Inputs are rejected beyond ±kMaxLossInput (as NaN and Inf are): squared norms, dot products and
// centred values then stay finite in float32 for any D up to 1e8. Trained embeddings are far smaller.
constexpr float kMaxLossInput = 1e15f;

// The op signatures. Losses return the loss (times weight) and write the gradients of LossGradOut;
// every backend returns only when the loss is on the host.
using SimcseFn = LossResult(const SimcseArgs& a, const LossGradOut& g);
using OffDropoutFn = LossResult(const OffDropoutArgs& a, const LossGradOut& g);
using DclFn = LossResult(const DclArgs& a, const LossGradOut& g);
using CosentFn = LossResult(const CosentArgs& a, const LossGradOut& g);
// g.gz1 is dL/dz (g.gz2 unused).
using MseFn = LossResult(const MseArgs& a, const LossGradOut& g);
using DropoutFn = void(const DropoutArgs& a);

// Benchmark baseline: the same off-dropout loss from separate ops with the N x N logits in memory
// (never for training); *workspaceBytes receives the bytes it allocated.
using OffDropoutUnfusedFn = LossResult(const OffDropoutArgs& a, const LossGradOut& g, size_t* workspaceBytes);
// Why the baseline cannot take n x d inputs on this backend (the N x N logits would not fit), or ""
// when it can. The message says "would not fit" (the benchmark skips such sizes).
using OffDropoutUnfusedFitFn = std::string(int64_t n, int64_t d);
// Bytes the fused offDropout of this backend takes from its workspace for n x d inputs
// (accumulate == false), for the benchmark's memory column.
using OffDropoutWorkspaceBytesFn = size_t(int64_t n, int64_t d);

}  // namespace simcsepp
