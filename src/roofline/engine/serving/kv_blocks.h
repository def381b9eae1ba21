// The narrow types the serving layers share: block and request ids, and KvBlocks, the view of a request's
// KV blocks that the KV cache manager hands out. Holders of a KvBlocks read ids; they never change a
// block's state (only KvCacheManager does, through the BlockPool it owns).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace roofline::serving {

using BlockId = int32_t;   // 0 .. num_blocks-1: the index of a block in the device KV pool
using BlockHash = uint64_t;
using RequestId = uint64_t;  // the server maps its string ids ("cmpl-...") onto these

inline constexpr BlockId kNoBlock = -1;

struct KvBlocks {
  std::vector<BlockId> ids;  // in table order: ids[i] holds token positions [i*block_size, (i+1)*block_size)

  bool empty() const { return ids.empty(); }
  size_t size() const { return ids.size(); }
};

}  // namespace roofline::serving
