// A Jinja template: parse once, render many times. This is the engine's
// public face (chat templates use it through common/chat_template.h).
//
//   TP_ASSIGN_OR_RETURN(jinja::Template t, jinja::Template::Parse(source));
//   Dict vars;  vars.Set("messages", Value::FromJson(messages_json));
//   TP_ASSIGN_OR_RETURN(std::string text, t.Render(vars, {}));
//
// Errors: InvalidArgument naming the line and construct (a syntax error, an
// unsupported tag or filter, a Python TypeError, the template's own
// raise_exception); ResourceExhausted when a render hits its limits.
#ifndef TPSERVE_COMMON_JINJA_TEMPLATE_H_
#define TPSERVE_COMMON_JINJA_TEMPLATE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/jinja/ast.h"
#include "common/jinja/interpreter.h"
#include "common/jinja/value.h"

namespace tpserve::jinja {

class Template {
 public:
  // Templates over this size are refused before parsing.
  static constexpr size_t kMaxSourceBytes = 1u << 20;

  static absl::StatusOr<Template> Parse(absl::string_view source);

  absl::StatusOr<std::string> Render(const Dict& variables,
                                     const RenderOptions& options) const;

 private:
  explicit Template(std::shared_ptr<const StmtList> program)
      : program_(std::move(program)) {}
  std::shared_ptr<const StmtList> program_;  // Shared by copies.
};

}  // namespace tpserve::jinja

#endif  // TPSERVE_COMMON_JINJA_TEMPLATE_H_
