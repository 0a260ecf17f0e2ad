{
  "targets": [
    {
      "target_name": "simcsepp",
      "sources": [
        "native/addon.cpp",
        "native/args.cpp",
        "native/bind_bench.cpp",
        "native/bind_dist.cpp",
        "native/bind_encoder.cpp",
        "native/bind_gemm.cpp",
        "native/bind_graph.cpp",
        "native/bind_losses.cpp",
        "native/bind_optim.cpp",
        "native/bind_search.cpp",
        "native/bind_system.cpp",
        "native/cuda_stub.cpp",
        "native/dispatch.cpp",
        "native/nvidia_wheels.cpp",
        "native/tensor.cpp",
        "native/cpu/attention.cpp",
        "native/cpu/backend.cpp",
        "native/cpu/bert_ops.cpp",
        "native/cpu/blas_ref.cpp",
        "native/cpu/clip.cpp",
        "native/cpu/column_sums.cpp",
        "native/cpu/dcl.cpp",
        "native/cpu/dropout.cpp",
        "native/cpu/gemm.cpp",
        "native/cpu/gemm_bf16.cpp",
        "native/cpu/infonce.cpp",
        "native/cpu/infonce_unfused.cpp",
        "native/cpu/parallel.cpp",
        "native/cpu/relative_bias.cpp",
        "native/cpu/search.cpp",
        "native/cpu/uniforms.cpp",
        "native/cpu/unit_rows.cpp",
        "native/distributed/mpi.cpp",
        "native/distributed/nccl.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-fexceptions", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}
