#include "roofline/backend/cpu/cpu_features.h"

#include <cstdlib>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "roofline/core/error.h"

namespace roofline {

std::string_view cpu_isa_to_string(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Scalar: return "scalar";
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Avx512: return "avx512";
    case CpuIsa::Avx512Bf16: return "avx512bf16";
  }
  return "?";
}

bool parse_cpu_isa(std::string_view name, CpuIsa* out) {
  for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512, CpuIsa::Avx512Bf16}) {
    if (name == cpu_isa_to_string(isa)) {
      *out = isa;
      return true;
    }
  }
  return false;
}

namespace {
#if defined(__x86_64__)
// F16C (CPUID.1:ECX bit 29); not every compiler's __builtin_cpu_supports knows "f16c".
bool has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
}
#endif
}  // namespace

bool cpu_supports(CpuIsa isa) {
#if defined(__x86_64__)
  // __builtin_cpu_supports also checks that the OS saves the AVX / AVX-512 register state (XCR0).
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  switch (isa) {
    case CpuIsa::Scalar: return true;
    case CpuIsa::Avx2: return avx2;
    case CpuIsa::Avx512: return avx512;
    case CpuIsa::Avx512Bf16: return avx512 && __builtin_cpu_supports("avx512bf16");
  }
  return false;
#else
  return isa == CpuIsa::Scalar;
#endif
}

CpuIsa detect_cpu_isa() {
  for (CpuIsa isa : {CpuIsa::Avx512Bf16, CpuIsa::Avx512, CpuIsa::Avx2})
    if (cpu_supports(isa)) return isa;
  return CpuIsa::Scalar;
}

std::vector<CpuIsa> supported_cpu_isas() {
  std::vector<CpuIsa> out;
  for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512, CpuIsa::Avx512Bf16})
    if (cpu_supports(isa)) out.push_back(isa);
  return out;
}

CpuIsa select_cpu_isa() {
  const char* env = std::getenv("ROOFLINE_CPU_ISA");
  if (env == nullptr || *env == '\0') return detect_cpu_isa();
  CpuIsa isa;
  ROOFLINE_CHECK(parse_cpu_isa(env, &isa), "ROOFLINE_CPU_ISA={}: unknown level (use scalar, avx2, avx512 or avx512bf16)",
                 env);
  ROOFLINE_CHECK(cpu_supports(isa), "ROOFLINE_CPU_ISA={}: this CPU does not support it (best: {})", env,
                 cpu_isa_to_string(detect_cpu_isa()));
  return isa;
}

std::string cpu_isa_name() { return std::string(cpu_isa_to_string(select_cpu_isa())); }

}  // namespace roofline
