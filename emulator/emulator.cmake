# The emulated CUDA flavour (SIMCSEPP_CUDA_MODE=emulate): kernels/*.cu compiled by the host C++ compiler
# with emulator/include/cuda_runtime.h force-included, and instrumented with -fsanitize=thread so that the
# emulator's hooks (emulator/checks.cpp) see every memory access of kernel code. No ThreadSanitizer
# runtime is linked: the emulator defines the __tsan_* functions itself.

add_library(simcsepp_emulator STATIC
  ${CMAKE_CURRENT_LIST_DIR}/context.cpp
  ${CMAKE_CURRENT_LIST_DIR}/runtime_api.cpp
  ${CMAKE_CURRENT_LIST_DIR}/graphs.cpp
  ${CMAKE_CURRENT_LIST_DIR}/memory.cpp
  ${CMAKE_CURRENT_LIST_DIR}/scheduler.cpp
  ${CMAKE_CURRENT_LIST_DIR}/checks.cpp
  ${CMAKE_CURRENT_LIST_DIR}/symbols.cpp
  ${CMAKE_CURRENT_LIST_DIR}/traffic.cpp)
set_target_properties(simcsepp_emulator PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(simcsepp_emulator PUBLIC ${CMAKE_CURRENT_LIST_DIR}/include)
target_compile_options(simcsepp_emulator PRIVATE -O2 -g -Wall -Wextra)
find_package(Threads REQUIRED)
target_link_libraries(simcsepp_emulator PUBLIC Threads::Threads ${CMAKE_DL_LIBS})

# Marks .cu files as emulated kernel sources (host C++, instrumented, with debug lines for fault reports).
function(simcsepp_emulated_sources)
  set_source_files_properties(${ARGN} PROPERTIES LANGUAGE CXX
    COMPILE_OPTIONS "-x;c++;-include;cuda_runtime.h;-fsanitize=thread;-g;-Wno-unknown-pragmas")
endfunction()

# The emulator's own tests: an executable of deliberately correct and broken kernels.
function(simcsepp_emulator_selftest)
  set(dir ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/selftest)
  simcsepp_emulated_sources(${dir}/kernels.cu)
  add_executable(emulator_selftest ${dir}/main.cpp ${dir}/kernels.cu)
  target_include_directories(emulator_selftest PRIVATE ${dir})
  target_link_libraries(emulator_selftest PRIVATE simcsepp_emulator)
  target_compile_options(emulator_selftest PRIVATE -O2 -Wall -Wextra)
  if(CMAKE_LIBRARY_OUTPUT_DIRECTORY)
    set_target_properties(emulator_selftest PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_LIBRARY_OUTPUT_DIRECTORY})
  endif()
endfunction()

# A stand-in libcublasLt computing on the host (fake_cublaslt.cpp), so that kernels/cublaslt.cu runs in CI:
# the emulated addon loads it when SIMCSEPP_CUBLASLT names it (test/cublaslt-emulated.test.ts).
function(simcsepp_emulator_fake_cublaslt)
  add_library(cublasLt-emulated SHARED ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/fake_cublaslt.cpp)
  # (-ffp-contract=off: a product and a sum, rounded apart, on every instruction set)
  target_compile_options(cublasLt-emulated PRIVATE -O3 -ffp-contract=off -Wall -Wextra)
  if(CMAKE_LIBRARY_OUTPUT_DIRECTORY)
    set_target_properties(cublasLt-emulated PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CMAKE_LIBRARY_OUTPUT_DIRECTORY})
  endif()
endfunction()

# A stand-in libnccl carried over the loaded Open MPI (fake_nccl.cpp), so that native/distributed/nccl.cpp runs
# in CI: the emulated addon loads it when SIMCSEPP_NCCL_LIB names it (test/cuda-distributed.test.ts).
function(simcsepp_emulator_fake_nccl)
  add_library(nccl-emulated SHARED ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/fake_nccl.cpp)
  target_compile_options(nccl-emulated PRIVATE -O2 -Wall -Wextra)
  target_link_libraries(nccl-emulated PRIVATE ${CMAKE_DL_LIBS})
  if(CMAKE_LIBRARY_OUTPUT_DIRECTORY)
    set_target_properties(nccl-emulated PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CMAKE_LIBRARY_OUTPUT_DIRECTORY})
  endif()
endfunction()
