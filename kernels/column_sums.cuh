// Column sums over many rows in a fixed order, spread over the whole GPU: the linear layers' bias gradient
// (gemm.cu: the column sums of dout) and LayerNorm's parameter gradients (layernorm.cu: the column sums of
// (dout * n, dout)).
//
// chunks_kernel: grid (ceil(C / 32), chunks of chunk_rows(R) rows), block (32, 8): thread (x, y) adds term(r, c)
// for column c = blockIdx.x * 32 + x over rows y, y + 8, ... of its chunk (each row read as coalesced 128-byte
// segments) into a T (double, or double2 for two sums at once); the 8 partials are added in y order through
// shared memory and the chunk's sum stored in `partial` (the op workspace). finish_kernel: the same block shape over
// the chunks' sums, lane y adding chunks y, y + 8, ... in order (kAhead of them in flight: in_order_sum.cuh), the lanes
// added in lane order, and hands the total to finish(c, total). Every order is fixed (no atomics): the same bits on
// every run. The row chunks are what spread the work: a 768-wide bias alone is only 24 column blocks.
// map_chunks_kernel: an element-wise pass in chunks_kernel's grid that sums the values it writes in chunks_kernel's
// order (the bits of chunks_kernel run over them after), so a producer of a gradient hands over its column sums
// without the gradient being read again (gemm.cu: the GELU pass of the MLP's backward, the bias gradient of the
// layer before).
// Both kernels may run over a range of chunks at a time (Chunks: the first chunk and how many), each chunk's sum
// going to its own row of `partial` whatever the range: the same bits however the chunks are split into launches
// (layernorm.cu cuts its two passes over the rows into slabs that fit the L2 cache, l2_slab.cuh).
#pragma once
#include <algorithm>
#include <cstdint>

#include "grid.cuh"
#include "in_order_sum.cuh"
#include "launch.cuh"

namespace simcsepp::cuda::colsum {

constexpr int kLanes = 8;            // row lanes of a chunk block (32 columns x 8 lanes)
constexpr int64_t kChunkRows = 128;  // rows per chunk, more when R would need over 65535 chunks

__device__ __forceinline__ double plus(double a, double b) { return a + b; }
__device__ __forceinline__ double2 plus(double2 a, double2 b) { return make_double2(a.x + b.x, a.y + b.y); }

// Three sums at once (layernorm.cu's backward: its two parameter gradients and the bias gradient of the layer before).
struct Sum3 {
  double x, y, z;
};
__device__ __forceinline__ Sum3 plus(Sum3 a, Sum3 b) { return Sum3{a.x + b.x, a.y + b.y, a.z + b.z}; }

// Rows per chunk for R rows, and the chunks (each a row of C sums in the workspace).
inline int64_t chunk_rows(int64_t R) { return std::max(kChunkRows, (R + detail::kMaxGridY - 1) / detail::kMaxGridY); }
inline int64_t chunks(int64_t R) { return (R + chunk_rows(R) - 1) / chunk_rows(R); }

// A run of chunks: [first, first + count) of the chunks of R rows (each chunk_rows(R) rows, the last one shorter).
struct Chunks {
  int64_t first, count;
};
inline Chunks all_chunks(int64_t R) { return Chunks{0, chunks(R)}; }

// This thread's first column (of kCols consecutive ones), its block's chunk and the chunk's rows [r0, r1): the grid
// both chunk kernels share (so their sums are the same bits), block y taking chunk first + y.
struct Cell {
  int64_t c, chunk, r0, r1;
};
template <int kCols = 1>
__device__ __forceinline__ Cell chunk_cell(int64_t R, int64_t chunkRows, int64_t first) {
  const int64_t chunk = first + static_cast<int64_t>(blockIdx.y), r0 = chunk * chunkRows;
  return Cell{kCols * (static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x), chunk, r0,
              r0 + chunkRows < R ? r0 + chunkRows : R};
}

// The block's lanes' sums of columns cell.c + k (k < kCols) added in lane order into partial[cell.chunk * C + cell.c +
// k] (every thread calls it; C a multiple of kCols).
template <int kCols, class T>
__device__ __forceinline__ void store_chunk(T* partial, T (&sums)[kLanes][32 * kCols], const T (&s)[kCols], int64_t C,
                                            const Cell& cell) {
#pragma unroll
  for (int k = 0; k < kCols; ++k) sums[threadIdx.y][kCols * threadIdx.x + k] = s[k];
  __syncthreads();
  if (threadIdx.y != 0 || cell.c >= C) return;
#pragma unroll
  for (int k = 0; k < kCols; ++k) {
    T t = s[k];
    for (int y = 1; y < kLanes; ++y) t = plus(t, sums[y][kCols * threadIdx.x + k]);
    partial[cell.chunk * C + cell.c + k] = t;
  }
}

// partial[chunk * C + c] = the sum over the chunk's rows r of term(s, r, c), which adds row r's term into s; the
// chunks from `first`, one per block row.
template <class T, class Term>
__global__ void __launch_bounds__(32 * kLanes)
    chunks_kernel(T* __restrict__ partial, Term term, int64_t R, int64_t C, int64_t chunkRows, int64_t first) {
  __shared__ T sums[kLanes][32];
  const Cell cell = chunk_cell(R, chunkRows, first);
  const int64_t c = cell.c, r0 = cell.r0, r1 = cell.r1;
  T s[1] = {};
  if (c < C)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kLanes) term(s[0], r, c);
  store_chunk<1>(partial, sums, s, C, cell);
}

// An element-wise pass over [R, C] that also sums by column what it computes, in chunks_kernel's grid, rows and order
// (so its partials are the bits chunks_kernel gives for the same terms). A thread takes Op::kColumns consecutive
// columns (1, or 4 with C a multiple of 4: 16-byte accesses, and per-row work once per 4 columns, as layernorm.cu's
// dropout uniforms from one Philox call), each column's terms in the same rows, lanes and order whatever kColumns.
// op.load(r, c) reads the inputs of (r, c .. c + kColumns - 1), op.apply(r, c, loaded, s) writes the outputs and adds
// column c + k's terms into s[k] (Op::Sum s[kColumns]). Each thread loads kAhead rows before applying any (a load
// kept next to its add would wait on memory at every row: in_order_sum.cuh).
template <class Op>
__global__ void __launch_bounds__(32 * kLanes)
    map_chunks_kernel(typename Op::Sum* __restrict__ partial, Op op, int64_t R, int64_t C, int64_t chunkRows,
                      int64_t first) {
  using Sum = typename Op::Sum;
  constexpr int kCols = Op::kColumns;
  constexpr int kAhead = kCols == 1 ? 8 : 4;  // 4 rows of 4 columns: 2 x 16 bytes each for layernorm.cu's op
  __shared__ Sum sums[kLanes][32 * kCols];
  const Cell cell = chunk_cell<kCols>(R, chunkRows, first);
  const int64_t c = cell.c, r0 = cell.r0, r1 = cell.r1;
  Sum s[kCols] = {};
  if (c < C)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kAhead * kLanes) {
      typename Op::Loaded v[kAhead];
#pragma unroll
      for (int u = 0; u < kAhead; ++u)
        if (r + u * kLanes < r1) v[u] = op.load(r + u * kLanes, c);
#pragma unroll
      for (int u = 0; u < kAhead; ++u)
        if (r + u * kLanes < r1) op.apply(r + u * kLanes, c, v[u], s);
    }
  store_chunk<kCols>(partial, sums, s, C, cell);
}

// An element-wise op on flat indices (load(i), apply(i, loaded) returning the float to sum) as map_chunks_kernel's:
// element (r, c) is index r * C + c, its value summed in double.
template <class Flat>
struct FlatSum {
  static constexpr int kColumns = 1;
  using Sum = double;
  using Loaded = typename Flat::Loaded;
  Flat op;
  int64_t C;
  __device__ Loaded load(int64_t r, int64_t c) const { return op.load(r * C + c); }
  __device__ void apply(int64_t r, int64_t c, Loaded v, double (&s)[1]) const {
    s[0] += static_cast<double>(op.apply(r * C + c, v));
  }
};

// finish(c, the sum of column c's n chunk sums): block (32 columns, kLanes lanes), lane y adding chunks y, y + kLanes,
// ... in order (kAhead in flight), then the lanes' sums added in lane order, as a chunk's rows are. A column's chain
// of dependent adds is n / kLanes long and a 768-wide bias spreads over 24 blocks (one thread a column, adding all n in
// order, was 3 blocks of 384 dependent terms at B = 512, T = 32).
template <int kAhead, class T, class Finish>
__global__ void __launch_bounds__(32 * kLanes)
    finish_kernel(const T* __restrict__ partial, Finish finish, int64_t n, int64_t C) {
  __shared__ T sums[kLanes][32];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  const int y = static_cast<int>(threadIdx.y);
  T s{};
  if (c < C) {
    const int64_t mine = n > y ? (n - y + kLanes - 1) / kLanes : 0;  // chunks y, y + kLanes, ... below n
    detail::add_in_order<kAhead>(
        s, mine, [&](int64_t k) { return partial[(y + k * kLanes) * C + c]; }, [](T a, T x) { return plus(a, x); });
  }
  sums[y][threadIdx.x] = s;
  __syncthreads();
  if (y != 0 || c >= C) return;
  T total = s;
  for (int l = 1; l < kLanes; ++l) total = plus(total, sums[l][threadIdx.x]);
  finish(c, total);
}

// Queues finish_kernel over n partial sums a column (partial [n, C]: chunks(R) of them, or any other fixed rows).
template <int kAhead, class T, class Finish>
void launch_finish(const char* finishName, T* partial, Finish finish, int64_t n, int64_t C, cudaStream_t stream) {
  launch(finishName, finish_kernel<kAhead, T, Finish>, detail::grid_blocks(C, 32, INT32_MAX), dim3(32, kLanes), 0,
         stream, partial, finish, n, C);
}

// A finish that adds each column's total to out[c] (a bias gradient).
struct AddTo {
  float* out;
  __device__ void operator()(int64_t c, double total) const { out[c] += static_cast<float>(total); }
};

// out[c] += the column sums of x [R, C] on `stream` (R, C > 0): launch_sums through the op workspace, whose lock it
// takes (gemm.cu).
void add_column_sums(float* out, const float* x, int64_t R, int64_t C, cudaStream_t stream);

// Queues chunks_kernel over the chunks `run` of R rows on `stream` (C > 0): their sums into partial's rows.
template <class T, class Term>
void launch_chunks(const char* chunksName, T* partial, Term term, int64_t R, int64_t C, Chunks run,
                   cudaStream_t stream) {
  launch(chunksName, chunks_kernel<T, Term>, dim3(detail::grid_blocks(C, 32, INT32_MAX), detail::grid_y(run.count)),
         dim3(32, kLanes), 0, stream, partial, term, R, C, chunk_rows(R), run.first);
}

// map_chunks_kernel's pass with `op` over the chunks `run` of [R, C] (C > 0, a multiple of Op::kColumns).
template <class Op>
void launch_map_chunks(const char* mapName, typename Op::Sum* partial, const Op& op, int64_t R, int64_t C, Chunks run,
                       cudaStream_t stream) {
  launch(mapName, map_chunks_kernel<Op>,
         dim3(detail::grid_blocks(C / Op::kColumns, 32, INT32_MAX), detail::grid_y(run.count)), dim3(32, kLanes), 0,
         stream, partial, op, R, C, chunk_rows(R), run.first);
}

// Queues both kernels on `stream` (R, C > 0); partial holds chunks(R) * C sums (the caller reserved it in the op
// workspace and holds its lock until this returns). The names are the two launches', for profiles.
template <int kAhead, class T, class Term, class Finish>
void launch_sums(const char* chunksName, const char* finishName, T* partial, Term term, Finish finish, int64_t R,
                 int64_t C, cudaStream_t stream) {
  launch_chunks(chunksName, partial, term, R, C, all_chunks(R), stream);
  launch_finish<kAhead>(finishName, partial, finish, chunks(R), C, stream);
}

// map_chunks_kernel's pass with `op` over [R, C] (R, C > 0), then finish(c, column c's sum) as launch_sums.
template <int kAhead, class Op, class Finish>
void launch_map_sums(const char* mapName, const char* finishName, typename Op::Sum* partial, const Op& op,
                     Finish finish, int64_t R, int64_t C, cudaStream_t stream) {
  launch_map_chunks(mapName, partial, op, R, C, all_chunks(R), stream);
  launch_finish<kAhead>(finishName, partial, finish, chunks(R), C, stream);
}

}  // namespace simcsepp::cuda::colsum
