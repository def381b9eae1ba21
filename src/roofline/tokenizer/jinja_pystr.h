// Python str semantics over UTF-8 strings, as the chat-template engine needs them: Jinja runs on Python
// strings, so strip/split/case mapping/find follow Python's rules (Unicode whitespace, code-point
// offsets), not C's. Every offset and length here counts code points, never bytes.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace roofline::jinja {

// Invalid UTF-8 bytes decode as U+FFFD (input from JSON is valid; this only keeps us total).
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view cps);
void utf8_append(std::string& out, char32_t cp);
size_t utf8_length(std::string_view s);
// Code points [begin, end) of s, clamped to its length.
std::string utf8_substr(std::string_view s, size_t begin, size_t end);

bool py_isspace(char32_t c);   // str.isspace: Unicode White_Space as CPython defines it
bool py_isalnum(char32_t c);   // letters and digits, what the regex \w adds to '_'
bool py_isalpha(char32_t c);
bool py_isdigit(char32_t c);
bool py_iscased_upper(char32_t c);
bool py_iscased_lower(char32_t c);

// str.strip / lstrip / rstrip; without chars strips Unicode whitespace.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split / str.rsplit; without sep splits on runs of whitespace and drops empty pieces.
// maxsplit < 0 means no limit.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep,
                                  int64_t maxsplit);
std::vector<std::string> py_rsplit(std::string_view s, const std::optional<std::string>& sep,
                                   int64_t maxsplit);
// str.splitlines(): \n, \r\n, \r, \v, \f, \x1c-\x1e, \x85, U+2028, U+2029 end a line.
std::vector<std::string> py_splitlines(std::string_view s, bool keepends = false);

std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_title(std::string_view s);       // str.title(): a cased letter after an uncased one
std::string py_capitalize(std::string_view s);  // str.capitalize()
std::string py_swapcase(std::string_view s);

// str.find / str.rfind: code-point index of sub, or -1.
int64_t py_find(std::string_view s, std::string_view sub, bool from_right = false);
int64_t py_count(std::string_view s, std::string_view sub);
// str.replace; count < 0 replaces all. An empty `old` inserts `replacement` between code points.
std::string py_replace(std::string_view s, std::string_view old, std::string_view replacement,
                       int64_t count = -1);

std::string py_repr(std::string_view s);  // 'quoted' exactly like Python's repr(str)
std::string py_float_repr(double d);      // repr(float): shortest round-trip digits, Python's layout

// Python's slice semantics: the indices that s[start:stop:step] visits in a sequence of `length`.
// step must be non-zero (the caller reports that error).
std::vector<int64_t> slice_indices(int64_t length, std::optional<int64_t> start, std::optional<int64_t> stop,
                                   int64_t step);

}  // namespace roofline::jinja
