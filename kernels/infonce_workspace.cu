// What the fused CUDA offDropout (kernels/infonce.cu, run_infonce) takes from the shared workspace, for
// the benchmark's memory column. It mirrors carve() there for offDropout with accumulate == false:
// the 16-byte DeviceHeader, then rinv of z1, z2, z0, cos(z1_i, z2_i) and lse (N floats each), every
// sub-buffer rounded up to 256 bytes by detail::Carver. (With accumulate, an N x D accumulator for gz0
// would follow; gz1 and gz2 never need one.) Workspace::reserve rounds the cudaMalloc up to whole MiB
// and keeps the buffer across calls, so this is the requested size, not a per-call allocation.
// Keep in sync with carve() in infonce.cu.
#include "cuda_check.cuh"

namespace simcsepp::cuda {

size_t offDropoutWorkspaceBytes(int64_t n, int64_t d) {
  (void)d;  // only the accumulate path (not measured here) depends on D
  if (n <= 0) return 0;  // run_infonce returns before touching the workspace
  detail::Carver cv(nullptr);
  cv.take<detail::DeviceHeader>(1);
  for (int k = 0; k < 3; ++k) cv.take<float>(static_cast<size_t>(n));  // rinv1, rinv2, rinv0
  cv.take<float>(static_cast<size_t>(n));                                // cosv
  cv.take<float>(static_cast<size_t>(n));                                // lse
  return cv.used();
}

}  // namespace simcsepp::cuda
