// The leading columns of [R, H] rows (native/ops/encoder.h), for Matryoshka training:
//   leading_columns:     out[r, c] = inp[r * H + c]                    (out [R, d], c < d <= H)
//   add_leading_columns: dinp[r * H + c] += scale * dout[r, c]         (columns c >= d untouched)
// The CPU's arithmetic (native/cpu/columns.cpp): a copy, and one multiply and one add per element (nvcc may fuse
// them into an FMA, which rounds once; with scale 1, the training's usual weight, both give the same bits).
// Tiling: one grid-stride loop over the R * d elements of the narrow side (grid.cuh's run_map, 256 threads a
// block): consecutive threads take consecutive columns of a row, so reads and writes of a row are coalesced.
#include "entry_points.cuh"
#include "grid.cuh"

namespace simcsepp::cuda {

namespace {

struct LeadingColumnsOp {
  float* out;
  const float* inp;
  int64_t d, H;
  __device__ void operator()(int64_t i) const {
    const int64_t r = i / d;
    out[i] = inp[r * H + (i - r * d)];
  }
};

struct AddLeadingColumnsOp {
  float* dinp;
  const float* dout;
  float scale;
  int64_t d, H;
  __device__ void operator()(int64_t i) const {
    const int64_t r = i / d;
    dinp[r * H + (i - r * d)] += scale * dout[i];
  }
};

}  // namespace

void leading_columns(float* out, const float* inp, int64_t R, int64_t d, int64_t H) {
  detail::run_map("leading_columns", LeadingColumnsOp{out, inp, d, H}, R * d);
}

void add_leading_columns(float* dinp, const float* dout, float scale, int64_t R, int64_t d, int64_t H) {
  detail::run_map("add_leading_columns", AddLeadingColumnsOp{dinp, dout, scale, d, H}, R * d);
}

}  // namespace simcsepp::cuda
