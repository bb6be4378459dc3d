#include "coordinator/output_text.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "common/logging.h"

namespace tpserve {

OutputText::OutputText(const Tokenizer& tokenizer,
                       absl::Span<const int32_t> prompt,
                       std::vector<std::string> stop, bool render_special)
    : detokenizer_(tokenizer, render_special, prompt) {
  matchers_.reserve(stop.size());
  for (std::string& s : stop) {
    // A caller bug otherwise: PrepareRequest rejects empty stop strings
    // (one would match everywhere).
    TP_CHECK(!s.empty()) << "OutputText: empty stop string";
    Matcher m;
    m.text = std::move(s);
    m.failure.assign(m.text.size(), 0);
    for (size_t i = 1, k = 0; i < m.text.size(); ++i) {
      while (k > 0 && m.text[i] != m.text[k]) k = m.failure[k - 1];
      if (m.text[i] == m.text[k]) ++k;
      m.failure[i] = k;
    }
    max_stop_ = std::max(max_stop_, m.text.size());
    matchers_.push_back(std::move(m));
  }
  held_.reserve(max_stop_);
}

OutputText::Delta OutputText::Push(int32_t token) {
  Delta delta;
  if (!stopped_ && !finished_) {
    delta.text = Consume(detokenizer_.Push(token), /*final=*/false);
  }
  delta.stopped = stopped_;
  if (stopped_) delta.matched_stop = matched_stop_;
  return delta;
}

std::string OutputText::Finish() {
  if (stopped_ || finished_) return "";
  finished_ = true;
  return Consume(detokenizer_.Finish(), /*final=*/true);
}

std::string OutputText::Consume(absl::string_view piece, bool final) {
  // Bytes before `held_` were emitted and cannot start an occurrence (the
  // matchers' states are shorter than held_), so every occurrence that can
  // complete now starts in held_ and ends in `piece`.
  const size_t base = held_.size();
  held_.append(piece.data(), piece.size());
  size_t best_start = std::string::npos;
  const std::string* best = nullptr;
  for (size_t pos = base; pos < held_.size(); ++pos) {
    const char c = held_[pos];
    for (Matcher& m : matchers_) {
      size_t k = m.matched;
      while (k > 0 && m.text[k] != c) k = m.failure[k - 1];
      if (m.text[k] == c) ++k;
      if (k == m.text.size()) {
        // A later-completing occurrence can still start earlier (stops
        // "abcd" and "bc" in one piece "abcd"), so keep scanning the piece
        // and keep the earliest start; on a tie the shorter one, which
        // completed first.
        const size_t start = pos + 1 - k;
        if (start < best_start) {
          best_start = start;
          best = &m.text;
        }
        k = m.failure[k - 1];
      }
      m.matched = k;
    }
  }
  if (best != nullptr) {
    std::string out = held_.substr(0, best_start);
    emitted_ += out;
    stopped_ = true;
    matched_stop_ = *best;
    held_.clear();
    return out;
  }
  // Hold the longest tail that is a prefix of some stop string: exactly
  // the text a future occurrence could start in.
  size_t hold = 0;
  if (!final) {
    for (const Matcher& m : matchers_) hold = std::max(hold, m.matched);
  }
  const size_t ready = held_.size() - hold;
  std::string out = held_.substr(0, ready);
  held_.erase(0, ready);
  emitted_ += out;
  return out;
}

}  // namespace tpserve
