// Chat templates against jinja2 rendering the real templates (goldens made
// by scripts/make_chat_golden.py): the default model's own ChatML template
// and Meta's Llama 3 and Llama 2 templates.
#include "common/chat_template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/test_paths.h"

namespace tpserve {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

TEST(ChatTemplateTest, MatchesJinjaRenderingOfRealTemplates) {
  const json golden = json::parse(
      testing::ReadFileOrEmpty(testing::GoldenPath("chat_templates.json")));
  int checked = 0;
  for (const json& c : golden["cases"]) {
    const json& t = golden["templates"][c["template"].get<std::string>()];
    auto tmpl = ChatTemplate::FromJinja(t["source"].get<std::string>(),
                                        t["bos"], t["eos"]);
    ASSERT_TRUE(tmpl.ok()) << tmpl.status();
    EXPECT_EQ(tmpl->name(), t["family"].get<std::string>());
    std::vector<ChatMessage> messages;
    for (const json& m : c["messages"]) {
      messages.push_back({m["role"], m["content"]});
    }
    auto text = tmpl->Apply(messages, c["add_generation_prompt"]);
    if (c["error"].get<bool>()) {
      EXPECT_FALSE(text.ok()) << c.dump();
    } else {
      ASSERT_TRUE(text.ok()) << text.status() << c.dump();
      EXPECT_EQ(*text, c["expected"].get<std::string>()) << c.dump();
    }
    ++checked;
  }
  EXPECT_EQ(checked, 24);
}

TEST(ChatTemplateTest, UnknownTemplatesAndBadMessagesAreClearErrors) {
  auto unknown = ChatTemplate::FromJinja("{{ messages }}", "", "");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(std::string(unknown.status().message()),
              HasSubstr("supported families: chatml, llama3, llama2"));
  EXPECT_FALSE(ChatTemplate::FromName("vicuna", "", "").ok());

  auto chatml = ChatTemplate::FromName("chatml", "", "");
  ASSERT_TRUE(chatml.ok());
  EXPECT_THAT(std::string(chatml->Apply({}, true).status().message()),
              HasSubstr("no messages"));
  const std::vector<ChatMessage> bad_role = {{"tool", "x"}};
  EXPECT_THAT(std::string(chatml->Apply(bad_role, true).status().message()),
              HasSubstr("role 'tool'"));
  const std::vector<ChatMessage> late_system = {{"user", "a"}, {"system", "b"}};
  EXPECT_FALSE(chatml->Apply(late_system, true).ok());
  // Without a default system prompt (plain ChatML), none is inserted.
  const std::vector<ChatMessage> one = {{"user", "hi"}};
  EXPECT_EQ(*chatml->Apply(one, true),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

}  // namespace
}  // namespace tpserve
