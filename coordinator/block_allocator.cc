#include "coordinator/block_allocator.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace tpserve {
namespace {

[[noreturn]] void Die(const char* what, int64_t value) {
  std::fprintf(stderr, "BlockAllocator: %s (%" PRId64 ")\n", what, value);
  std::abort();
}

}  // namespace

BlockAllocator::BlockAllocator(int64_t num_blocks) : num_blocks_(num_blocks) {
  if (num_blocks < 0 ||
      num_blocks > int64_t{std::numeric_limits<int32_t>::max()} + 1) {
    Die("num_blocks out of range", num_blocks);
  }
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
  if (n < 0) Die("negative allocation", n);
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
    if (id < 0 || id >= num_blocks_) Die("freeing an unknown block", id);
    if (!in_use_[static_cast<size_t>(id)]) Die("double free of block", id);
    in_use_[static_cast<size_t>(id)] = false;
    free_.push_back(id);
  }
}

}  // namespace tpserve
