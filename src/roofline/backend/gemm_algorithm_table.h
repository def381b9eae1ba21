// The GEMM algorithms a run chose, kept so that another run can make exactly the same choices.
//
// Why: cuBLASLt's heuristic is deterministic but not always the fastest (GPT-2 training on the H100: the
// attention-out forward 0.087 ms with the heuristic's first candidate against 0.062 ms with another). Timing
// the candidates and keeping the fastest (`roofline train --gemm-algorithms tune`) can pick differently in two
// processes when two candidates are close, and different algorithms round differently: a resumed run would no
// longer repeat the uninterrupted one bit for bit. So the choices travel with the checkpoint
// (trainer_state/state.json, "gemm_algorithms") and a resumed run reuses them.
//
// A choice is valid only for the cuBLASLt version and the GPU that made it (cuBLASLt documents its algorithm
// struct as serialisable for the same library version); `library` and `device` say which. The table holds
// no CUDA types, so it is read, written and checked without a GPU.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace roofline {

struct GemmAlgorithmChoice {
  std::string algorithm;    // the opaque algorithm struct, lower-case hex
  double ms = 0;            // its median time when chosen (0: not timed)
  double heuristic_ms = 0;  // the heuristic's first candidate's median time then (0: not timed)
};

struct GemmAlgorithmTable {
  std::string library;  // e.g. "cublasLt 130000"
  std::string device;   // e.g. "NVIDIA H100 80GB HBM3, 132 SMs"
  std::map<std::string, GemmAlgorithmChoice> choices;  // GEMM form (LtGemm's plan key) -> choice

  bool empty() const { return choices.empty(); }
  // Whether the choices were made by this library on this device (and so may be reused here).
  bool made_by(std::string_view this_library, std::string_view this_device) const {
    return library == this_library && device == this_device;
  }
  nlohmann::json to_json() const;
  // Throws roofline::Error naming `where` and the offending entry for anything malformed.
  static GemmAlgorithmTable from_json(const nlohmann::json& j, std::string_view where);
};

std::string bytes_to_hex(const void* data, size_t bytes);
// Exactly 2 * bytes hex digits into out; false (out untouched) for any other length or a non-hex digit.
bool hex_to_bytes(std::string_view hex, void* out, size_t bytes);

}  // namespace roofline
