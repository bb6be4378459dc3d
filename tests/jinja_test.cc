// The Jinja engine on small templates. Expected outputs are jinja2 3.1.6's
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols:
// transformers' settings), from tests/chat_templates/jinja_unit_cases.py.
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/match.h"
#include "common/jinja/template.h"
#include "gtest/gtest.h"

namespace tpserve::jinja {
namespace {

absl::StatusOr<std::string> Render(const std::string& source,
                                   const std::string& vars_json = "{}",
                                   RenderOptions options = {}) {
  absl::StatusOr<Template> t = Template::Parse(source);
  if (!t.ok()) return t.status();
  Dict vars;
  const nlohmann::ordered_json json = nlohmann::ordered_json::parse(vars_json);
  for (auto it = json.begin(); it != json.end(); ++it) {
    vars.Set(it.key(), Value::FromJson(it.value()));
  }
  return t->Render(vars, options);
}

struct Case {
  const char* source;
  const char* vars;
  const char* expected;  // nullptr: jinja2 raises.
};

#include "tests/jinja_unit_cases.inc"

TEST(JinjaTest, MatchesJinja2) {
  for (const Case& c : kCases) {
    absl::StatusOr<std::string> got = Render(c.source, c.vars);
    if (c.expected == nullptr) {
      EXPECT_FALSE(got.ok()) << c.source << " gave " << *got;
    } else {
      ASSERT_TRUE(got.ok()) << c.source << ": " << got.status();
      EXPECT_EQ(*got, c.expected) << c.source;
    }
  }
}

TEST(JinjaTest, ErrorsNameTheConstructAndLine) {
  auto bad_tag = Render("a\n{% include 'x' %}");
  ASSERT_FALSE(bad_tag.ok());
  EXPECT_EQ(bad_tag.status().message(), "line 2: unsupported tag 'include'");
  auto bad_filter = Render("{{ 'a' | wordwrap }}");
  ASSERT_FALSE(bad_filter.ok());
  EXPECT_EQ(bad_filter.status().message(), "line 1: unknown filter 'wordwrap'");
  auto raised = Render("\n\n{{ raise_exception('roles must alternate') }}");
  ASSERT_FALSE(raised.ok());
  EXPECT_EQ(raised.status().message(),
            "line 3: template error: roles must alternate");
  auto unclosed = Render("{% for x in y %}");
  ASSERT_FALSE(unclosed.ok());
  EXPECT_TRUE(absl::StrContains(unclosed.status().message(), "endfor"));
}

TEST(JinjaTest, LimitsBoundRunawayTemplates) {
  RenderOptions small;
  small.limits.max_steps = 100000;
  small.limits.max_output_bytes = 1 << 16;
  small.limits.max_list_items = 1000;
  const char* runaway[] = {
      "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
      "{% endfor %}",
      "{{ 'x' * 1000000000 }}",
      "{% set s = namespace(v='ab') %}{% for i in range(64) %}"
      "{% set s.v = s.v ~ s.v %}{% endfor %}",
      "{{ range(100000000) | length }}",
      "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
      "{{ [1] * 100000000 }}",
  };
  for (const char* source : runaway) {
    auto got = Render(source, "{}", small);
    ASSERT_FALSE(got.ok()) << source;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kResourceExhausted)
        << source << ": " << got.status();
  }
  // Deep nesting is refused at parse time, before any recursion can
  // overflow the stack.
  std::string deep =
      "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_FALSE(Render(deep).ok());
  std::string deep_blocks;
  for (int i = 0; i < 5000; ++i) deep_blocks += "{% if true %}";
  EXPECT_FALSE(Render(deep_blocks).ok());
  // So are long left-nested chains, whose trees are as deep as they are
  // long: a + a + ..., a.b.c..., x | f | g ...
  std::string sum = "{{ 1";
  for (int i = 0; i < 100000; ++i) sum += " + 1";
  EXPECT_FALSE(Render(sum + " }}").ok());
  std::string attrs = "{{ x";
  for (int i = 0; i < 100000; ++i) attrs += ".a";
  EXPECT_FALSE(Render(attrs + " }}").ok());
  std::string filters = "{{ 'x'";
  for (int i = 0; i < 100000; ++i) filters += " | trim";
  EXPECT_FALSE(Render(filters + " }}").ok());
  // Chains as long as templates write them parse.
  std::string ok_sum = "{{ 1";
  for (int i = 0; i < 50; ++i) ok_sum += " + 1";
  EXPECT_EQ(*Render(ok_sum + " }}"), "51");

  // Recursion through macros, each level a deep expression: bounded (by
  // the combined Exec/Eval depth) before the C++ stack is.
  std::string nots;
  for (int i = 0; i < 120; ++i) nots += "not ";
  auto recursion = Render("{% macro m(n) %}{{ " + nots +
                          "(m(n - 1) if n > 0 else 'end') }}{% endmacro %}"
                          "{{ m(39) }}");
  if (!recursion.ok()) {
    EXPECT_EQ(recursion.status().code(), absl::StatusCode::kResourceExhausted)
        << recursion.status();
  }

  // Values nested without bound, built a level per loop step.
  auto nested = Render(
      "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}"
      "{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}",
      "{}", small);
  ASSERT_FALSE(nested.ok());
  EXPECT_EQ(nested.status().code(), absl::StatusCode::kResourceExhausted);
  // A namespace that would hold itself (a cycle nothing frees).
  for (const char* cycle :
       {"{% set ns = namespace() %}{% set ns.me = ns %}",
        "{% set ns = namespace() %}{% set ns.l = [1, {'a': ns}] %}",
        "{% macro m() %}{% endmacro %}{% set ns = namespace() %}"
        "{% set ns.f = m %}"}) {
    auto got = Render(cycle);
    ASSERT_FALSE(got.ok()) << cycle;
    EXPECT_TRUE(absl::StrContains(got.status().message(),
                                  "cannot hold a namespace or a function"))
        << got.status();
  }
}

TEST(JinjaTest, StrftimeNowUsesTheGivenClock) {
  RenderOptions options;
  options.now = absl::FromUnixSeconds(1785076205);  // 2026-07-26 14:30:05 UTC
  options.time_zone = absl::UTCTimeZone();
  auto got =
      Render("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%B %d, %Y') }}",
             "{}", options);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "26 Jul 2026|July 26, 2026");
}

}  // namespace
}  // namespace tpserve::jinja
