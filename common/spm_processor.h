// A narrow, std-only view of libsentencepiece's processor.
//
// Debian's sentencepiece_processor.h declares `namespace absl { using
// std::string_view; }`, which collides with the real Abseil (whose
// string_view is its own type here). So only spm_processor.cc includes it,
// and it includes no Abseil header; everything else sees this interface.
#ifndef TPSERVE_COMMON_SPM_PROCESSOR_H_
#define TPSERVE_COMMON_SPM_PROCESSOR_H_

#include <memory>
#include <string>
#include <vector>

namespace tpserve {

class SpmProcessor {
 public:
  // Loads a serialized SentencePiece model (the bytes of tokenizer.model).
  // On failure returns nullptr and sets *error.
  static std::unique_ptr<SpmProcessor> Load(const std::string& serialized,
                                            std::string* error);
  virtual ~SpmProcessor() = default;

  // Token ids of UTF-8 `text` (no BOS/EOS).
  virtual std::vector<int> Encode(const std::string& text) const = 0;
  virtual int size() const = 0;
  virtual const std::string& Piece(int id) const = 0;
  virtual bool IsControl(int id) const = 0;
  virtual bool IsUnknown(int id) const = 0;
  virtual bool IsByte(int id) const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
  virtual int unk_id() const = 0;
  // Whether the model prepends a space (normalizer add_dummy_prefix).
  virtual bool adds_dummy_prefix() const = 0;
};

}  // namespace tpserve

#endif  // TPSERVE_COMMON_SPM_PROCESSOR_H_
