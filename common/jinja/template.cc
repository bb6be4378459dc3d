#include "common/jinja/template.h"

#include "absl/strings/str_cat.h"
#include "common/jinja/parser.h"
#include "common/status_macros.h"
#include "common/unicode.h"

namespace tpserve::jinja {

absl::StatusOr<Template> Template::Parse(absl::string_view source) {
  if (source.size() > kMaxSourceBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("template of ", source.size(),
                     " bytes is over the limit of ", kMaxSourceBytes));
  }
  if (!IsValidUtf8(source)) {
    return absl::InvalidArgumentError("template is not valid UTF-8");
  }
  TP_ASSIGN_OR_RETURN(StmtList program, jinja::Parse(source));
  return Template(std::make_shared<const StmtList>(std::move(program)));
}

absl::StatusOr<std::string> Template::Render(
    const Dict& variables, const RenderOptions& options) const {
  Interpreter interpreter(options);
  return interpreter.Render(*program_, variables);
}

}  // namespace tpserve::jinja
