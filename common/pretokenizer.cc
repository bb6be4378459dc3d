#include "common/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/unicode.h"

namespace tpserve {
namespace {

// GPT-2's pattern, also the second stage of StarCoder/SmolLM.
constexpr char kGpt2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)";
// Llama 3's pattern with the case-insensitive group spelled out, as
// llama.cpp adapted it; numbers in groups of up to three digits.
constexpr char kLlama3[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|"
    "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// Qwen2: as Llama 3 but single digits.
constexpr char kQwen2[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|"
    "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

}  // namespace

struct PreTokenizer::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

absl::StatusOr<std::vector<std::string>> PreTokenizer::PatternsForGgufPre(
    absl::string_view pre) {
  if (pre == "gpt-2" || pre == "gpt2" || pre == "mpt" || pre == "olmo") {
    return std::vector<std::string>{kGpt2};
  }
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" ||
      pre == "smaug-bpe" || pre == "dbrx") {
    return std::vector<std::string>{kLlama3};
  }
  if (pre == "qwen2" || pre == "stablelm2") {
    return std::vector<std::string>{kQwen2};
  }
  if (pre == "smollm" || pre == "starcoder" || pre == "refact" ||
      pre == "codeshell" || pre == "command-r") {
    // Digits are split one by one before the GPT-2 pattern.
    return std::vector<std::string>{"\\p{N}", kGpt2};
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "tokenizer: unknown pre-tokenizer '", pre,
      "' (tokenizer.ggml.pre); supported: gpt-2, llama-bpe, qwen2, smollm "
      "and their aliases. Re-convert the model with a current llama.cpp or "
      "report the model so its pre-tokenizer can be added."));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::Create(
    const std::vector<std::string>& patterns) {
  std::unique_ptr<PreTokenizer> pre(new PreTokenizer());
  for (const std::string& pattern : patterns) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    auto compiled = std::make_unique<Compiled>();
    compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()),
                                   pattern.size(), PCRE2_UTF | PCRE2_UCP,
                                   &error, &offset, nullptr);
    if (compiled->code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return absl::InvalidArgumentError(absl::StrCat(
          "tokenizer: bad pre-tokenizer regex at offset ", offset, ": ",
          reinterpret_cast<const char*>(message), " in '", pattern, "'"));
    }
    // JIT is an optimization: without it (e.g. unsupported CPU) matching
    // still works through the interpreter.
    pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE);
    pre->patterns_.push_back(compiled.release());
  }
  return pre;
}

PreTokenizer::~PreTokenizer() {
  for (Compiled* c : patterns_) delete c;
}

absl::StatusOr<std::vector<absl::string_view>> PreTokenizer::Split(
    absl::string_view text) const {
  if (!IsValidUtf8(text)) {
    return absl::InvalidArgumentError("tokenizer: text is not valid UTF-8");
  }
  std::vector<absl::string_view> pieces = {text};
  if (text.empty()) pieces.clear();
  pcre2_match_data* match =
      pcre2_match_data_create(1, nullptr);  // Whole-match offsets only.
  if (match == nullptr) return absl::ResourceExhaustedError("pcre2: no memory");
  // Long runs of whitespace recurse deeply in the JIT: give it room.
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 << 10, 8 << 20, nullptr);
  if (context != nullptr && stack != nullptr) {
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  absl::Status status;
  for (const Compiled* pattern : patterns_) {
    std::vector<absl::string_view> next;
    next.reserve(pieces.size() * 2);
    for (absl::string_view piece : pieces) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      PCRE2_SIZE start = 0, last_end = 0;
      while (start < piece.size()) {
        // Validated above; every piece starts and ends on a character.
        int rc = pcre2_match(pattern->code, subject, piece.size(), start,
                             PCRE2_NO_UTF_CHECK, match, context);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          PCRE2_UCHAR message[256];
          pcre2_get_error_message(rc, message, sizeof(message));
          status = absl::ResourceExhaustedError(
              absl::StrCat("tokenizer: regex match failed: ",
                           reinterpret_cast<const char*>(message)));
          break;
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match);
        const PCRE2_SIZE m_begin = ov[0], m_end = ov[1];
        if (m_begin > last_end) {
          next.push_back(piece.substr(last_end, m_begin - last_end));
        }
        if (m_end > m_begin) {
          next.push_back(piece.substr(m_begin, m_end - m_begin));
          start = m_end;
        } else {
          // Empty match: step over one whole character.
          start = m_end + Utf8SequenceLength(piece[m_end]);
          if (start > piece.size()) start = piece.size();
        }
        last_end = m_end > last_end ? m_end : last_end;
      }
      if (!status.ok()) break;
      if (last_end < piece.size()) next.push_back(piece.substr(last_end));
    }
    if (!status.ok()) break;
    pieces = std::move(next);
  }
  pcre2_match_data_free(match);
  pcre2_jit_stack_free(stack);
  pcre2_match_context_free(context);
  if (!status.ok()) return status;
  return pieces;
}

}  // namespace tpserve
