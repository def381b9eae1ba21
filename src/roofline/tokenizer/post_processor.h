// tokenizer.json "post_processor" for single sequences: TemplateProcessing, RobertaProcessing,
// BertProcessing, ByteLevel (offsets only: ids unchanged) and Sequence. With add_special_tokens=false
// they leave the ids as they are, as HF does.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace roofline::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;
};

// Null JSON gives null. Throws roofline::Error naming `where` for an unknown or malformed post-processor.
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const std::string& where);

}  // namespace roofline::tok
