// Includes libsentencepiece and, on purpose, no Abseil header (see .h).
#include "common/spm_processor.h"

#include <sentencepiece_processor.h>

namespace tpserve {
namespace {

class SpmProcessorImpl final : public SpmProcessor {
 public:
  sentencepiece::SentencePieceProcessor sp;
  bool dummy_prefix = true;

  std::vector<int> Encode(const std::string& text) const override {
    std::vector<int> ids;
    if (!sp.Encode(text, &ids).ok()) ids.clear();
    return ids;
  }
  int size() const override { return sp.GetPieceSize(); }
  const std::string& Piece(int id) const override { return sp.IdToPiece(id); }
  bool IsControl(int id) const override { return sp.IsControl(id); }
  bool IsUnknown(int id) const override { return sp.IsUnknown(id); }
  bool IsByte(int id) const override { return sp.IsByte(id); }
  int bos_id() const override { return sp.bos_id(); }
  int eos_id() const override { return sp.eos_id(); }
  int unk_id() const override { return sp.unk_id(); }
  bool adds_dummy_prefix() const override { return dummy_prefix; }
};

}  // namespace

std::unique_ptr<SpmProcessor> SpmProcessor::Load(const std::string& serialized,
                                                 std::string* error) {
  auto impl = std::make_unique<SpmProcessorImpl>();
  const auto status = impl->sp.LoadFromSerializedProto(serialized);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  // The model proto's header is not shipped, so read the normalizer's
  // add_dummy_prefix off its behaviour: does "a" start with U+2581?
  std::vector<int> probe;
  impl->dummy_prefix =
      impl->sp.Encode("a", &probe).ok() && !probe.empty() &&
      impl->sp.IdToPiece(probe[0]).rfind("\xE2\x96\x81", 0) == 0;
  return impl;
}

}  // namespace tpserve
