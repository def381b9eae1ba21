// The main() of the GPU micro benchmarks: each defines `int run(int argc, char** argv)`; an exception it
// throws (a CUDA failure, a bad flag) is printed with the benchmark's name and exits 1.
#pragma once
#include <cstdio>
#include <exception>

namespace roofline {

inline int bench_main(const char* name, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace roofline
