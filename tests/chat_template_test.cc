// Chat templates: the model's own Jinja template and the built-in ones,
// against jinja2's renderings (tests/golden/chat_templates.json, made by
// scripts/make_chat_golden.py: the default model's ChatML template and
// Meta's Llama 3 and Llama 2 templates), plus the ChatPrompt variables.
// The engine itself is checked over real templates by
// chat_template_conformance_test.
#include "common/chat_template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/test_paths.h"

namespace tpserve {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

ChatPrompt Prompt(std::vector<ChatMessage> messages,
                  bool add_generation_prompt = true) {
  ChatPrompt p;
  p.messages = std::move(messages);
  p.add_generation_prompt = add_generation_prompt;
  return p;
}

TEST(ChatTemplateTest, MatchesJinjaRenderingOfRealTemplates) {
  const json golden = json::parse(
      testing::ReadFileOrEmpty(testing::GoldenPath("chat_templates.json")));
  int checked = 0;
  for (const json& c : golden["cases"]) {
    const json& t = golden["templates"][c["template"].get<std::string>()];
    SpecialTokens tokens;
    tokens.bos = t["bos"];
    tokens.eos = t["eos"];
    auto tmpl = ChatTemplate::FromSource(t["source"].get<std::string>(), tokens,
                                         "golden");
    ASSERT_TRUE(tmpl.ok()) << tmpl.status();
    std::vector<ChatMessage> messages;
    for (const json& m : c["messages"]) {
      messages.emplace_back(m["role"], m["content"]);
    }
    auto text = tmpl->Apply(Prompt(messages, c["add_generation_prompt"]));
    if (c["error"].get<bool>()) {
      EXPECT_FALSE(text.ok()) << c.dump();
    } else {
      ASSERT_TRUE(text.ok()) << text.status() << c.dump();
      EXPECT_EQ(*text, c["expected"].get<std::string>()) << c.dump();
    }
    // The built-in template of the same family renders the same.
    const std::string family = t["family"];
    if (family != "chatml") {
      auto builtin = ChatTemplate::Builtin(family, tokens);
      ASSERT_TRUE(builtin.ok()) << builtin.status();
      auto again = builtin->Apply(Prompt(messages, c["add_generation_prompt"]));
      EXPECT_EQ(again.ok(), text.ok());
      if (text.ok() && again.ok()) {
        EXPECT_EQ(*again, *text);
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, 24);
}

TEST(ChatTemplateTest, BuiltinsAndFlags) {
  auto chatml = ChatTemplate::Builtin("chatml", {});
  ASSERT_TRUE(chatml.ok()) << chatml.status();
  EXPECT_EQ(*chatml->Apply(Prompt({{"user", "hi"}})),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_THAT(std::string(chatml->Apply(Prompt({})).status().message()),
              HasSubstr("no messages"));
  auto unknown = ChatTemplate::FromFlag("vicuna", {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(std::string(unknown.status().message()),
              HasSubstr("neither a built-in template (chatml, llama3, "
                        "llama2) nor a readable file"));

  // A template file.
  const std::string path = ::testing::TempDir() + "/chat.jinja";
  {
    std::ofstream out(path);
    out << "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
           "{% if add_generation_prompt %}<assistant>{% endif %}\n";
  }
  auto file = ChatTemplate::FromFlag(path, {});
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(*file->Apply(Prompt({{"system", "s"}, {"user", "u"}})),
            "<system>s<user>u<assistant>");
  std::remove(path.c_str());

  // A template with a syntax error names the line and construct.
  auto broken = ChatTemplate::FromSource("a\n{% for x in %}", {}, "test");
  ASSERT_FALSE(broken.ok());
  EXPECT_THAT(
      std::string(broken.status().message()),
      HasSubstr("chat template (test): line 2: expected an expression"));
}

TEST(ChatTemplateTest, ToolsKwargsAndToolCallsReachTheTemplate) {
  auto t = ChatTemplate::FromSource(
      "{% if tools %}{{ tools | tojson }}|{% endif %}"
      "{% for m in messages %}{{ m.role }}:{{ m.content }}"
      "{% if m.tool_calls %}{% for c in m.tool_calls %}"
      "[{{ c.id }} {{ c.function.name }} {{ c.function.arguments | tojson }}"
      " {{ c.function.arguments.city is defined }}]{% endfor %}{% endif %}"
      "{% if m.tool_call_id %}({{ m.tool_call_id }}){% endif %}"
      "{% if m.reasoning_content %}<{{ m.reasoning_content }}>{% endif %}"
      ";{% endfor %}{{ enable_thinking }}",
      {}, "test");
  ASSERT_TRUE(t.ok()) << t.status();
  ChatPrompt p;
  p.messages.emplace_back("user", "weather?");
  ChatMessage call("assistant", "");
  call.reasoning_content = "think";
  call.tool_calls.push_back(
      {"c1", "get_weather", R"({"city": "Oslo", "n": 1})"});
  call.tool_calls.push_back({"c2", "raw", "not json"});
  p.messages.push_back(call);
  ChatMessage result("tool", "sunny");
  result.tool_call_id = "c1";
  p.messages.push_back(result);
  // Key order is the caller's, as in Python dicts.
  p.tools_json = R"([{"type": "function", "function": {"name": "z", "a": 1}}])";
  p.kwargs_json = R"({"enable_thinking": false})";
  auto text = t->Apply(p);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(
      *text,
      R"([{"type": "function", "function": {"name": "z", "a": 1}}]|)"
      R"(user:weather?;assistant:[c1 get_weather {"city": "Oslo", "n": 1} True])"
      R"([c2 raw "not json" False]<think>;tool:sunny(c1);False)");

  ChatPrompt reserved = Prompt({{"user", "x"}});
  reserved.kwargs_json = R"({"bos_token": "<s>"})";
  EXPECT_THAT(std::string(t->Apply(reserved).status().message()),
              HasSubstr("may not set 'bos_token'"));
  ChatPrompt bad_tools = Prompt({{"user", "x"}});
  bad_tools.tools_json = "[1, ";
  EXPECT_FALSE(t->Apply(bad_tools).ok());
}

TEST(ChatTemplateTest, ToolUseTemplateIsPickedWhenToolsAreOffered) {
  auto t = ChatTemplate::FromSource("default", {}, "test");
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->SetToolUseSource("tool_use {{ tools | length }}").ok());
  EXPECT_EQ(*t->Apply(Prompt({{"user", "x"}})), "default");
  ChatPrompt with_tools = Prompt({{"user", "x"}});
  with_tools.tools_json = R"([{"type": "function"}])";
  EXPECT_EQ(*t->Apply(with_tools), "tool_use 1");
}

TEST(ChatTemplateTest, RefusalsAndLimitsAreErrors) {
  auto t = ChatTemplate::Builtin("llama2", {"<s>", "</s>", "", ""});
  ASSERT_TRUE(t.ok());
  auto refused = t->Apply(Prompt({{"assistant", "a"}}));
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("Conversation roles must alternate"));
  auto runaway = ChatTemplate::FromSource(
      "{% for i in range(1000000) %}{% for j in range(1000000) %}"
      "{% endfor %}{% endfor %}",
      {}, "test");
  ASSERT_TRUE(runaway.ok());
  jinja::RenderLimits limits;
  limits.max_steps = 100000;
  runaway->set_limits(limits);
  EXPECT_EQ(runaway->Apply(Prompt({{"user", "x"}})).status().code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace tpserve
