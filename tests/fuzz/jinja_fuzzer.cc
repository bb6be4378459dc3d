// libFuzzer target for the Jinja engine (templates and the conversations
// they render are untrusted). The first byte picks the mode:
//   even: the rest is a template, rendered over a fixed conversation with
//         tools and tool calls;
//   odd:  the rest is a JSON object of template variables, rendered by a
//         fixed template that walks messages and tools the way real chat
//         templates do.
// A render must end (the step limit bounds loops and recursion), stay
// under its output limit, and fail only with a Status.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/jinja/template.h"
#include "common/json_util.h"

namespace {

using tpserve::jinja::Dict;
using tpserve::jinja::RenderOptions;
using tpserve::jinja::Template;
using tpserve::jinja::Value;

RenderOptions Options() {
  RenderOptions o;
  o.limits.max_steps = 200000;
  o.limits.max_output_bytes = 1 << 20;
  o.limits.max_list_items = 1 << 16;
  o.now = absl::FromUnixSeconds(1785076205);
  o.time_zone = absl::UTCTimeZone();
  return o;
}

const Dict& Conversation() {
  static const Dict* vars = [] {
    auto json = tpserve::ParseUntrustedOrderedJson(
        R"({"messages": [
              {"role": "system", "content": "Be brief."},
              {"role": "user", "content": "Weather in Oslo? ✓ 🦙"},
              {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {
                  "name": "get_weather", "arguments": {"city": "Oslo"}}}]},
              {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
              {"role": "assistant", "content": "<think>hm</think>Sunny."}],
            "tools": [{"type": "function", "function": {
              "name": "get_weather", "description": "Current weather",
              "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "enum": ["Oslo", "Rome"]}},
                "required": ["city"]}}}],
            "add_generation_prompt": true, "bos_token": "<s>",
            "eos_token": "</s>", "enable_thinking": false})",
        "fuzz", {});
    if (!json.ok()) std::abort();
    auto* d = new Dict;
    for (auto it = json->begin(); it != json->end(); ++it) {
      d->Set(it.key(), Value::FromJson(it.value()));
    }
    return d;
  }();
  return *vars;
}

const Template& Walker() {
  static const Template* t = [] {
    auto parsed = Template::Parse(
        "{%- set ns = namespace(n=0) -%}"
        "{%- if tools %}{{ tools | tojson(indent=2) }}{% endif -%}"
        "{%- for m in messages if m is mapping -%}"
        "{%- set ns.n = ns.n + 1 -%}"
        "{{ bos_token if loop.first }}<{{ m.role | default('?') }}>"
        "{%- if m.content is string %}{{ m.content | trim }}"
        "{%- elif m.content is iterable %}{% for p in m.content %}"
        "{{ p.text if p is mapping else p }}{% endfor %}{% endif -%}"
        "{%- for c in m.tool_calls | default([]) if c is mapping -%}"
        "[{{ c.function.name }} {{ c.function.arguments | tojson }}]"
        "{%- endfor -%}"
        "{{ (m | dictsort | length) ~ (m.keys() | list | join(',')) }}"
        "{%- endfor %}{{ ns.n }}"
        "{%- if add_generation_prompt %}<assistant>{% endif %}");
    if (!parsed.ok()) std::abort();
    return new Template(std::move(*parsed));
  }();
  return *t;
}

void CheckRender(const absl::StatusOr<std::string>& out) {
  if (out.ok() && out->size() > Options().limits.max_output_bytes) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    auto t = Template::Parse(rest);
    if (t.ok()) CheckRender(t->Render(Conversation(), Options()));
    return 0;
  }
  tpserve::JsonLimits limits;
  limits.max_values = 1 << 14;
  auto json = tpserve::ParseUntrustedOrderedJson(rest, "fuzz", limits);
  if (!json.ok() || !json->is_object()) return 0;
  Dict vars;
  for (auto it = json->begin(); it != json->end(); ++it) {
    vars.Set(it.key(), Value::FromJson(it.value()));
  }
  CheckRender(Walker().Render(vars, Options()));
  return 0;
}
