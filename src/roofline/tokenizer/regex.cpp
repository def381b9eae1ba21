#include "roofline/tokenizer/regex.h"

#include <pcre2.h>

#include <nlohmann/json.hpp>

#include "roofline/core/error.h"
#include "roofline/tokenizer/fast_split.h"
#include "roofline/tokenizer/unicode.h"

namespace roofline::tok {

namespace {
// Unicode White_Space, as a character-class body.
constexpr std::string_view kWhiteSpace =
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
    "\\x{3000}";
constexpr std::string_view kHexDigit = "0-9a-fA-F";
}  // namespace

std::string onig_to_pcre2(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  int class_depth = 0;
  size_t i = 0;
  while (i < p.size()) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[i + 1];
      if (e == 'Q') {  // \Q...\E: copy verbatim
        size_t end = p.find("\\E", i + 2);
        end = end == std::string_view::npos ? p.size() : end + 2;
        out.append(p.substr(i, end - i));
        i = end;
        continue;
      }
      std::string_view body = e == 's' || e == 'S' ? kWhiteSpace : kHexDigit;
      bool rewrite = e == 's' || e == 'h' || ((e == 'S' || e == 'H') && class_depth == 0);
      if (rewrite) {
        bool negate = e == 'S' || e == 'H';
        if (class_depth == 0) out.append(negate ? "[^" : "[");
        out.append(body);
        if (class_depth == 0) out.push_back(']');
      } else {
        out.push_back(c);
        out.push_back(e);
      }
      i += 2;
      continue;
    }
    if (c == '[') {
      if (class_depth > 0 && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX class [:name:]
        size_t end = p.find(":]", i + 2);
        if (end != std::string_view::npos) {
          out.append(p.substr(i, end + 2 - i));
          i = end + 2;
          continue;
        }
      }
      ++class_depth;
      out.push_back(c);
      ++i;
      // A ']' right after '[' or '[^' is a literal member.
      if (i < p.size() && p[i] == '^') out.push_back(p[i++]);
      if (i < p.size() && p[i] == ']') out.push_back(p[i++]);
      continue;
    }
    if (c == ']' && class_depth > 0) --class_depth;
    out.push_back(c);
    ++i;
  }
  return out;
}

struct MatchScratch::State {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  ~State() {
    if (jit_stack) pcre2_jit_stack_free(jit_stack);
    if (context) pcre2_match_context_free(context);
    if (data) pcre2_match_data_free(data);
  }
};

MatchScratch::MatchScratch() : state_(std::make_unique<State>()) {
  state_->data = pcre2_match_data_create(1, nullptr);
  if (!state_->data) fail("tokenizer: out of memory creating PCRE2 match data");
}
MatchScratch::~MatchScratch() = default;

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  KnownSplit known = KnownSplit::None;
  std::string source;
  ~Code() {
    if (code) pcre2_code_free(code);
  }
};

Regex::Regex(std::string_view pattern, const std::string& where, bool allow_fast_split)
    : code_(std::make_unique<Code>()) {
  code_->source = std::string(pattern);
  if (allow_fast_split) code_->known = recognize_split_pattern(pattern);
  std::string rewritten = onig_to_pcre2(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error, &offset, nullptr);
  if (!code_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    fail("{}: invalid regex '{}' at offset {}: {}", where, std::string(pattern), size_t(offset),
         reinterpret_cast<const char*>(message));
  }
  code_->jit = pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;
Regex::~Regex() = default;

void Regex::find_all(std::string_view text, std::vector<Span>& out, MatchScratch& scratch) const {
  if (code_->known != KnownSplit::None) {
    fast_split(code_->known, text, out);
    return;
  }
  auto* state = scratch.state_.get();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t n = text.size();
  size_t last_end = 0;
  bool have_last = false;
  size_t last_match_end = 0;
  while (last_end <= n) {
    int rc = code_->jit ? pcre2_jit_match(code_->code, subject, n, last_end, 0, state->data, state->context)
                        : pcre2_match(code_->code, subject, n, last_end, PCRE2_NO_UTF_CHECK, state->data,
                                      state->context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !state->jit_stack) {
      state->jit_stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
      state->context = pcre2_match_context_create(nullptr);
      if (!state->jit_stack || !state->context) fail("tokenizer: out of memory creating a PCRE2 JIT stack");
      pcre2_jit_stack_assign(state->context, nullptr, state->jit_stack);
      continue;
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      fail("tokenizer: regex '{}' failed to match: {}", code_->source, reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state->data);
    size_t s = ov[0], e = ov[1];
    if (s == e && have_last && last_match_end == e) {
      last_end += last_end < n ? utf8_len(static_cast<unsigned char>(text[last_end])) : 1;
      continue;
    }
    last_end = e;
    last_match_end = e;
    have_last = true;
    out.push_back({uint32_t(s), uint32_t(e)});
  }
}

Pattern Pattern::from_json(const nlohmann::json& j, const std::string& where) {
  if (j.is_object() && j.contains("String") && j["String"].is_string()) return literal(j["String"].get<std::string>());
  if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
    Pattern p;
    p.regex_ = std::make_shared<const Regex>(j["Regex"].get<std::string>(), where);
    return p;
  }
  if (j.is_string()) return literal(j.get<std::string>());  // some writers store the bare string
  fail("{}: pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {}", where, j.dump());
}

Pattern Pattern::literal(std::string s) {
  Pattern p;
  if (s.empty()) {
    p.regex_ = std::make_shared<const Regex>("", "empty literal pattern");
  } else {
    p.literal_ = std::move(s);
  }
  return p;
}

void Pattern::find_all(std::string_view text, std::vector<Span>& out, MatchScratch& scratch) const {
  if (regex_) {
    regex_->find_all(text, out, scratch);
    return;
  }
  size_t pos = 0;
  while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
    out.push_back({uint32_t(pos), uint32_t(pos + literal_.size())});
    pos += literal_.size();
  }
}

}  // namespace roofline::tok
