#include "coordinator/block_allocator.h"

#include <limits>

#include "common/logging.h"

namespace tpserve {
BlockAllocator::BlockAllocator(int64_t num_blocks) : num_blocks_(num_blocks) {
  TP_CHECK(num_blocks >= 0 &&
           num_blocks <= int64_t{std::numeric_limits<int32_t>::max()} + 1)
      << "BlockAllocator: num_blocks " << num_blocks << " out of range";
  free_.reserve(static_cast<size_t>(num_blocks));
  // Highest id at the bottom of the stack, so 0 is handed out first.
  for (int64_t id = num_blocks - 1; id >= 0; --id) {
    free_.push_back(static_cast<int32_t>(id));
  }
  in_use_.assign(static_cast<size_t>(num_blocks), false);
}

bool BlockAllocator::IsFree(int32_t id) const {
  return id >= 0 && id < num_blocks_ && !in_use_[static_cast<size_t>(id)];
}

bool BlockAllocator::Allocate(int64_t n, std::vector<int32_t>* out) {
  TP_CHECK(n >= 0) << "BlockAllocator: allocating " << n << " blocks";
  if (n > num_free()) return false;
  out->reserve(out->size() + static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = free_.back();
    free_.pop_back();
    in_use_[static_cast<size_t>(id)] = true;
    out->push_back(id);
  }
  return true;
}

void BlockAllocator::Free(const std::vector<int32_t>& blocks) {
  // Pushed in reverse so that allocating the same count again hands back
  // the same ids in the same order.
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    const int32_t id = *it;
    TP_CHECK(id >= 0 && id < num_blocks_)
        << "BlockAllocator: freeing unknown block " << id;
    TP_CHECK(in_use_[static_cast<size_t>(id)])
        << "BlockAllocator: double free of block " << id;
    in_use_[static_cast<size_t>(id)] = false;
    free_.push_back(id);
  }
}

}  // namespace tpserve
