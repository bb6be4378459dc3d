// Counts one level of recursion for as long as it lives: the parser and
// the interpreter bound their recursion on untrusted templates with it.
#ifndef TPSERVE_COMMON_JINJA_DEPTH_GUARD_H_
#define TPSERVE_COMMON_JINJA_DEPTH_GUARD_H_

namespace tpserve::jinja {

class DepthGuard {
 public:
  explicit DepthGuard(int* depth) : depth_(depth) { ++*depth_; }
  ~DepthGuard() { --*depth_; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;

 private:
  int* depth_;
};

}  // namespace tpserve::jinja

#endif  // TPSERVE_COMMON_JINJA_DEPTH_GUARD_H_
