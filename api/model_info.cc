#include "api/model_info.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/model_config.h"
#include "common/model_tokenizer.h"
#include "common/status_macros.h"
#include "worker/tp_plan.h"

namespace tpserve {

absl::StatusOr<v1::ModelInfo> DescribeModel(const ModelWeights& model) {
  const ModelConfig& c = model.config();
  v1::ModelInfo info;
  info.set_name(c.name);
  info.set_architecture(c.architecture);
  info.set_format(model.format() == ModelFormat::kGguf ? "gguf"
                                                       : "safetensors");
  if (const GgufFile* gguf = model.gguf()) {
    info.set_file_bytes(gguf->file_size());
  } else {
    uint64_t bytes = 0;
    for (const auto& shard : model.shards()) bytes += shard->file_size();
    info.set_file_bytes(bytes);
  }
  info.set_parameter_count(c.ParameterCount());
  info.set_vocab_size(c.vocab_size);
  info.set_hidden_size(c.hidden_size);
  info.set_intermediate_size(c.intermediate_size);
  info.set_num_layers(static_cast<int32_t>(c.n_layers));
  info.set_num_heads(static_cast<int32_t>(c.n_heads));
  info.set_num_kv_heads(static_cast<int32_t>(c.n_kv_heads));
  info.set_head_dim(static_cast<int32_t>(c.head_dim));
  info.set_max_context(c.max_positions);
  info.set_rms_norm_eps(c.rms_eps);
  info.set_rope_theta(c.rope_theta);
  info.set_tied_embeddings(c.tied_embeddings);
  info.set_weight_type(std::string(GgmlTypeName(c.weight_type)));
  if (const GgufFile* gguf = model.gguf()) {
    if (auto tok = gguf->GetString("tokenizer.ggml.model"); tok.ok()) {
      info.set_tokenizer(std::string(*tok));
    }
  } else {
    info.set_tokenizer(DescribeTokenizerSource(nullptr, model.path()));
  }
  info.set_bos_token_id(c.bos_token_id);
  info.set_eos_token_id(c.eos_token_id);
  info.set_has_chat_template(
      LoadChatTemplateSource(model.gguf(), model.path()).ok());

  for (const TensorView& t : model.tensors()) {
    (*info.mutable_tensor_types())[std::string(GgmlTypeName(t.type))] += 1;
  }
  // Quantized weights stay packed, so each rank's share of a row-parallel
  // weight must be whole blocks of its type.
  for (int world : ValidTpSizes(c, 8, LayerRowBlock(model))) {
    v1::TpOption* opt = info.add_tp_options();
    opt->set_world_size(world);
    opt->set_kv_replicated(world > c.n_kv_heads);
  }
  return info;
}

std::string FormatModelInfo(const v1::ModelInfo& info) {
  std::vector<std::string> tp;
  for (const v1::TpOption& o : info.tp_options()) {
    tp.push_back(absl::StrCat(o.world_size(),
                              o.kv_replicated() ? " (KV replicated)" : ""));
  }
  std::map<std::string, int> types(info.tensor_types().begin(),
                                   info.tensor_types().end());
  std::vector<std::string> type_list;
  for (const auto& [name, count] : types) {
    type_list.push_back(absl::StrCat(name, " x", count));
  }
  std::string out;
  auto line = [&out](absl::string_view key, const auto& value) {
    absl::StrAppend(&out, absl::StrFormat("%-18s", key), value, "\n");
  };
  line("name", info.name().empty() ? "(unnamed)" : info.name());
  line("architecture", info.architecture());
  line("format", absl::StrCat(info.format(), ", ",
                              absl::StrFormat("%.1f MiB",
                                              info.file_bytes() / 1048576.0)));
  line("parameters", absl::StrFormat("%.1f M", info.parameter_count() / 1e6));
  line("weights", info.weight_type());
  line("layers", info.num_layers());
  line("hidden / ffn",
       absl::StrCat(info.hidden_size(), " / ", info.intermediate_size()));
  line("heads (q / kv)",
       absl::StrCat(info.num_heads(), " / ", info.num_kv_heads(), ", head_dim ",
                    info.head_dim()));
  line("vocabulary", absl::StrCat(info.vocab_size(), " tokens, tokenizer '",
                                  info.tokenizer(), "'"));
  line("bos / eos",
       absl::StrCat(info.bos_token_id(), " / ", info.eos_token_id()));
  line("context", absl::StrCat(info.max_context(), " tokens"));
  line("rope theta", info.rope_theta());
  line("rms eps", info.rms_norm_eps());
  line("tied embeddings", info.tied_embeddings() ? "yes" : "no");
  line("chat template", info.has_chat_template() ? "yes" : "no");
  line("tensor types", absl::StrJoin(type_list, ", "));
  line("tensor parallel", absl::StrCat("--tp ", absl::StrJoin(tp, ", ")));
  return out;
}

}  // namespace tpserve
