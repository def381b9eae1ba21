// Run configuration files for `roofline train --config FILE`: TOML (flat `key = value` lines; [sections]
// only group keys and are ignored; strings, numbers, booleans and arrays of numbers) or JSON (one object,
// nested objects flattened the same way). Keys are the command-line flag names without the dashes, with
// '_' and '-' interchangeable ("grad_accum" or "grad-accum").
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace roofline::train {

// (key, value as command-line text) pairs, in file order; booleans become "true"/"false", arrays "1,2,3".
// Throws roofline::Error naming the file and line for syntax errors.
std::vector<std::pair<std::string, std::string>> read_config_file(const std::string& path);
// The same from the file's text; `path` names it in errors.
std::vector<std::pair<std::string, std::string>> parse_config_text(const std::string& text, const std::string& path);

}  // namespace roofline::train
