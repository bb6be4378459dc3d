// `tpserve generate --model MODEL [--tp N] [--max-tokens K] [sampling
// flags] [--chat] PROMPT`: runs the engine locally (no servers) and streams
// the continuation to stdout.
#include <cmath>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/cli.h"
#include "common/chat_template.h"
#include "common/model_tokenizer.h"
#include "common/model_weights.h"
#include "common/sampling.h"
#include "coordinator/output_text.h"
#include "worker/local_generator.h"

namespace tpserve::cli {
namespace {

absl::Status ParseInt(const Flags& flags, const std::string& name, int* out) {
  const std::string v = flags.Get(name);
  if (v.empty()) return absl::OkStatus();
  if (!absl::SimpleAtoi(v, out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " takes an integer, got '", v, "'"));
  }
  return absl::OkStatus();
}

absl::Status ParseFloat(const Flags& flags, const std::string& name,
                        float* out) {
  const std::string v = flags.Get(name);
  if (v.empty()) return absl::OkStatus();
  if (!absl::SimpleAtof(v, out) || !std::isfinite(*out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " takes a number, got '", v, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

int Generate(int argc, char** argv) {
  auto flags = ParseFlags(
      argc, argv,
      {"model", "tp", "threads", "max-tokens", "temperature", "top-k", "top-p",
       "min-p", "repetition-penalty", "presence-penalty", "frequency-penalty",
       "seed", "system", "chat-template", "server", "stop", "timeout",
       "api-key", "tls-ca"},
      {"chat", "ignore-eos", "special"});
  if (!flags.ok()) return Fail(flags.status());
  const std::string path = flags->Get("model");
  if (!flags->Get("server").empty() && !flags->positional.empty()) {
    return GenerateRemote(*flags, absl::StrJoin(flags->positional, " "));
  }
  if (path.empty() || flags->positional.empty()) {
    return Fail(absl::InvalidArgumentError(
        "generate needs --model MODEL (or --server HOST:PORT) and a PROMPT, "
        "e.g. tpserve generate --model model.gguf \"The capital of France "
        "is\""));
  }
  const std::string prompt_text = absl::StrJoin(flags->positional, " ");

  GenerateOptions options;
  // Greedy unless a temperature is given: reproducible by default.
  options.sampling.temperature = 0;
  int seed = -1;
  for (absl::Status s :
       {ParseInt(*flags, "tp", &options.tp),
        ParseInt(*flags, "threads", &options.threads),
        ParseInt(*flags, "max-tokens", &options.max_tokens),
        ParseInt(*flags, "top-k", &options.sampling.top_k),
        ParseInt(*flags, "seed", &seed),
        ParseFloat(*flags, "temperature", &options.sampling.temperature),
        ParseFloat(*flags, "top-p", &options.sampling.top_p),
        ParseFloat(*flags, "min-p", &options.sampling.min_p),
        ParseFloat(*flags, "repetition-penalty",
                   &options.sampling.repetition_penalty),
        ParseFloat(*flags, "presence-penalty",
                   &options.sampling.presence_penalty),
        ParseFloat(*flags, "frequency-penalty",
                   &options.sampling.frequency_penalty)}) {
    if (!s.ok()) return Fail(s);
  }
  if (seed >= 0) {
    options.sampling.seed = static_cast<uint64_t>(seed);
    options.sampling.has_seed = true;
  }

  const auto open_start = std::chrono::steady_clock::now();
  auto model = OpenModel(path);
  if (!model.ok()) return Fail(model.status());
  auto tokenizer = LoadTokenizer((*model)->gguf(), path);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  const Tokenizer& tok = **tokenizer;
  std::cerr << absl::StrFormat(
      "model: %s mapped and validated in %.0f ms\n", path,
      std::chrono::duration<double, std::milli>(
          std::chrono::steady_clock::now() - open_start)
          .count());

  std::string text = prompt_text;
  EncodeOptions encode;
  encode.add_bos = tok.add_bos_by_default();
  if (flags->Bool("chat")) {
    absl::StatusOr<ChatTemplate> chat = LoadChatTemplate(
        (*model)->gguf(), path, flags->Get("chat-template"), tok);
    if (absl::IsNotFound(chat.status())) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "--chat: the model has no chat template; pass --chat-template "
          "NAME|FILE (built-in: ",
          absl::StrJoin(ChatTemplate::BuiltinNames(), ", "), ")")));
    }
    if (!chat.ok()) return Fail(chat.status());
    ChatPrompt chat_prompt;
    if (!flags->Get("system").empty()) {
      chat_prompt.messages.push_back({"system", flags->Get("system")});
    }
    chat_prompt.messages.push_back({"user", prompt_text});
    auto applied = chat->Apply(chat_prompt);
    if (!applied.ok()) return Fail(applied.status());
    text = *applied;
    encode.add_bos = false;  // The template places BOS where it belongs.
    encode.parse_special = true;
  }
  auto prompt = tok.Encode(text, encode);
  if (!prompt.ok()) return Fail(prompt.status());
  if (!flags->Bool("ignore-eos"))
    options.stop_ids = tok.end_of_generation_ids();

  // The servers' text path (coordinator/output_text.h): decoded in the
  // prompt's context, with the stop string applied.
  std::vector<std::string> stop;
  if (!flags->Get("stop").empty()) stop.push_back(flags->Get("stop"));
  OutputText text_out(tok, *prompt, std::move(stop), flags->Bool("special"));
  if (!flags->Bool("chat")) std::cout << prompt_text << std::flush;
  auto result = tpserve::Generate(
      **model, *prompt, options, [&](const GeneratedToken& t) {
        OutputText::Delta delta = text_out.Push(t.id);
        std::cout << delta.text << std::flush;
        return !delta.stopped;
      });
  std::cout << text_out.Finish() << std::endl;
  if (!result.ok()) return Fail(result.status());
  const int generated = static_cast<int>(result->tokens.size());
  std::cerr << absl::StrFormat(
      "prompt %d tokens, prefill %.1f tok/s; generated %d tokens, decode %.1f "
      "tok/s (tp %d)%s\n",
      result->prompt_tokens,
      result->prompt_tokens / std::max(result->prefill_seconds, 1e-9),
      generated,
      generated > 1 ? (generated - 1) / std::max(result->decode_seconds, 1e-9)
                    : 0.0,
      options.tp,
      text_out.stopped() ? ", stopped at the stop string"
      : result->stopped  ? ", stopped at end of generation"
                         : "");
  return 0;
}

}  // namespace tpserve::cli
