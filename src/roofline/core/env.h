// On/off switches from the environment, for measuring one choice against another (A/B runs): unset gives the
// default, "0" off, "1" on, anything else the default. Callers read each name once (a function-local static).
#pragma once
#include <cstdlib>
#include <cstring>

namespace roofline {

inline bool env_switch(const char* name, bool by_default) {
  const char* v = std::getenv(name);
  if (v == nullptr) return by_default;
  if (std::strcmp(v, "0") == 0) return false;
  if (std::strcmp(v, "1") == 0) return true;
  return by_default;
}

}  // namespace roofline
