// The coordinator's book of paged-KV blocks. The KV pool lives in the
// workers (each rank holds its 1/N slice of every block); the coordinator
// only decides which block ids a sequence owns and sends them as its block
// table with every step.
#ifndef TPSERVE_COORDINATOR_BLOCK_ALLOCATOR_H_
#define TPSERVE_COORDINATOR_BLOCK_ALLOCATOR_H_

#include <cstdint>
#include <vector>

namespace tpserve {

// Block ids are [0, num_blocks). A LIFO free list: the most recently freed
// block is handed out first (a fresh allocator hands out 0, 1, 2, ...).
// Not thread-safe: the scheduler owning it is driven by the engine's thread.
class BlockAllocator {
 public:
  // 0 <= num_blocks <= 2^31 (ids are int32).
  explicit BlockAllocator(int64_t num_blocks);

  BlockAllocator(const BlockAllocator&) = delete;
  BlockAllocator& operator=(const BlockAllocator&) = delete;

  int64_t num_blocks() const { return num_blocks_; }
  int64_t num_free() const { return static_cast<int64_t>(free_.size()); }
  // True when `id` is in range and not allocated.
  bool IsFree(int32_t id) const;

  // Appends n block ids to *out. Returns false (and allocates nothing) if
  // fewer than n are free. n >= 0.
  bool Allocate(int64_t n, std::vector<int32_t>* out);
  // Returns the blocks to the free list. A block that is out of range or
  // already free is a caller bug: aborts (always checked: one bit per block,
  // and a double free would silently hand one block to two sequences).
  void Free(const std::vector<int32_t>& blocks);

 private:
  int64_t num_blocks_;
  std::vector<int32_t> free_;  // Stack: back() is handed out next.
  std::vector<bool> in_use_;  // Indexed by id; in_use_[id] <=> id not in free_.
};

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_BLOCK_ALLOCATOR_H_
