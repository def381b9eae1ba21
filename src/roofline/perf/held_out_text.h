// The default text `roofline report` scores perplexity, KL divergence and top-1 agreement on when no
// --quality-text is given: the opening of "Alice's Adventures in Wonderland" by Lewis Carroll (1865, public
// domain). It is short (about 700 words) so that the check runs in seconds; pass a text the models have
// not been trained on for a real held-out measurement.
#pragma once
#include <string_view>

namespace roofline::perf {

std::string_view default_held_out_text();

}  // namespace roofline::perf
