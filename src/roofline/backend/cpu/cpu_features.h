// Which SIMD level the CPU kernels run at. The level is chosen once per backend (at construction), from
// the best one the CPU supports, or from ROOFLINE_CPU_ISA=scalar|avx2|avx512|avx512bf16 to force a lower
// one (tests run every level the machine has; benchmarks compare them).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace roofline {

// Ordered: each level includes everything below it.
enum class CpuIsa : int {
  Scalar = 0,      // portable C++, the reference every SIMD path is tested against
  Avx2 = 1,        // AVX2 + FMA + F16C
  Avx512 = 2,      // AVX-512 F/BW/VL/DQ
  Avx512Bf16 = 3,  // AVX-512 + the BF16 dot-product instructions
};

std::string_view cpu_isa_to_string(CpuIsa isa);
// Parses "scalar", "avx2", "avx512", "avx512bf16"; false when unknown.
bool parse_cpu_isa(std::string_view name, CpuIsa* out);

// True when this CPU (and the OS, for the AVX-512 register state) can run the level.
bool cpu_supports(CpuIsa isa);
// The best level this CPU supports.
CpuIsa detect_cpu_isa();
// Every level this CPU supports, lowest first.
std::vector<CpuIsa> supported_cpu_isas();

// The level a new CPU backend uses: ROOFLINE_CPU_ISA when set, else detect_cpu_isa(). Throws
// roofline::Error for an unknown name or a level this CPU lacks.
CpuIsa select_cpu_isa();
// Name of select_cpu_isa(), e.g. "avx512bf16".
std::string cpu_isa_name();

}  // namespace roofline
