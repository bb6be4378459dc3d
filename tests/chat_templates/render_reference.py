#!/usr/bin/env python3
"""Renders real Hugging Face chat templates with jinja2, exactly as
transformers' apply_chat_template does, to check tpserve's C++ Jinja engine
(tests/chat_template_conformance_test.cc) against them.

Usage: render_reference.py TEMPLATES_DIR OUT.json   (needs only jinja2)

TEMPLATES_DIR holds llama.cpp's models/templates/*.jinja (see
scripts/fetch-test-data.sh). Every conversation below is rendered with every
template. The templates in REQUIRED must be present and the C++ engine must
match them; any other template that jinja2 renders for at least one
conversation is written too, marked "required": false.

OUT.json:
  {"clock": "...", "cases": [{"template", "required", "conversation",
    "context": {the render() keyword arguments, in order},
    "expected": "..."  or  "error": "...", "error_type": "..."}]}
"conversation" is the name in CONVERSATIONS, with "/no_generation_prompt"
appended for its add_generation_prompt=False rendering.
A case with "error" is one jinja2 refuses; the C++ engine must fail it too.
error_type is "raise_exception" when the template raised it itself (then the
message is the template's own text), else the Python exception's class.
"""
import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.sandbox

# strftime_now reads this clock instead of the real one, so the outputs are
# reproducible; the C++ test pins its engine to the same instant.
CLOCK = datetime.datetime(2026, 7, 26, 14, 30, 5)

# The templates the C++ engine must render exactly (file names in
# TEMPLATES_DIR).
REQUIRED = [
    "meta-llama-Llama-3.1-8B-Instruct.jinja",
    "meta-llama-Llama-3.2-3B-Instruct.jinja",
    "meta-llama-Llama-3.3-70B-Instruct.jinja",
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
    "Qwen-Qwen2.5-7B-Instruct.jinja",
    "Qwen-Qwen3-0.6B.jinja",
    "Qwen-QwQ-32B.jinja",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja",
    "Mistral-Small-3.2-24B-Instruct-2506.jinja",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
    "HuggingFaceTB-SmolLM3-3B.jinja",
    "microsoft-Phi-3.5-mini-instruct.jinja",
    "google-gemma-2-2b-it.jinja",
    "ibm-granite-granite-3.3-2B-Instruct.jinja",
]

# (bos_token, eos_token) of each template's model, as its tokenizer_config.json
# has them: transformers passes them to every template (templates differ in
# whether they use them). Unlisted templates get DEFAULT_SPECIAL_TOKENS.
LLAMA3_TOKENS = ("<|begin_of_text|>", "<|eot_id|>")
# DeepSeek's tokens use fullwidth bars (U+FF5C) and U+2581, as in the model.
DEEPSEEK_TOKENS = ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>")
CHATML_TOKENS = ("", "<|im_end|>")
MISTRAL_TOKENS = ("<s>", "</s>")
SPECIAL_TOKENS = {
    "meta-llama-Llama-3.1-8B-Instruct.jinja": LLAMA3_TOKENS,
    "meta-llama-Llama-3.2-3B-Instruct.jinja": LLAMA3_TOKENS,
    "meta-llama-Llama-3.3-70B-Instruct.jinja": LLAMA3_TOKENS,
    "fireworks-ai-llama-3-firefunction-v2.jinja": LLAMA3_TOKENS,
    "meetkai-functionary-medium-v3.1.jinja": LLAMA3_TOKENS,
    "meetkai-functionary-medium-v3.2.jinja": LLAMA3_TOKENS,
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja": DEEPSEEK_TOKENS,
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja": DEEPSEEK_TOKENS,
    "deepseek-ai-DeepSeek-V3.1.jinja": DEEPSEEK_TOKENS,
    "llama-cpp-deepseek-r1.jinja": DEEPSEEK_TOKENS,
    "Qwen-Qwen2.5-7B-Instruct.jinja": CHATML_TOKENS,
    "Qwen-Qwen3-0.6B.jinja": CHATML_TOKENS,
    "Qwen-QwQ-32B.jinja": CHATML_TOKENS,
    "HuggingFaceTB-SmolLM3-3B.jinja": CHATML_TOKENS,
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": MISTRAL_TOKENS,
    "Mistral-Small-3.2-24B-Instruct-2506.jinja": MISTRAL_TOKENS,
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja":
        ("<|begin_of_text|>", "<|im_end|>"),
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja":
        ("<|begin_of_text|>", "<|im_end|>"),
    "microsoft-Phi-3.5-mini-instruct.jinja": ("<s>", "<|endoftext|>"),
    "google-gemma-2-2b-it.jinja": ("<bos>", "<eos>"),
    "ibm-granite-granite-3.3-2B-Instruct.jinja":
        ("<|end_of_text|>", "<|end_of_text|>"),
}
DEFAULT_SPECIAL_TOKENS = MISTRAL_TOKENS

# --- Conversations -----------------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {
                        "type": "string",
                        "description": 'City name, e.g. "Paris" or "São Paulo"',
                    },
                    "unit": {
                        "type": "string",
                        "enum": ["celsius", "fahrenheit"],
                        "description": "Temperature unit (°C or °F)",
                    },
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_flights",
            "description": "Search direct & connecting flights between two airports.",
            "parameters": {
                "type": "object",
                "properties": {
                    "route": {
                        "type": "object",
                        "description": "Where the trip starts and ends",
                        "properties": {
                            "origin": {"type": "string",
                                       "description": "IATA code, e.g. CDG"},
                            "destination": {"type": "string",
                                            "description": "IATA code, e.g. NRT"},
                        },
                        "required": ["origin", "destination"],
                    },
                    "max_stops": {"type": "integer",
                                  "description": "At most this many stops"},
                    "refundable": {"type": "boolean",
                                   "description": "Only refundable fares"},
                },
                "required": ["route"],
            },
        },
    },
]

# A tool whose parameters use an array: some templates map JSON schema types
# to Python ones and take odd paths there, kept apart from the common cases.
ARRAY_TOOL = {
    "type": "function",
    "function": {
        "name": "add_tags",
        "description": "Tag a document.",
        "parameters": {
            "type": "object",
            "properties": {
                "doc_id": {"type": "string", "description": "The document"},
                "tags": {"type": "array", "items": {"type": "string"},
                         "description": "Tags to add"},
            },
            "required": ["doc_id", "tags"],
        },
    },
}

WEATHER_ARGS = {"city": "Paris", "unit": "celsius"}
FLIGHT_ARGS = {"route": {"origin": "CDG", "destination": "NRT"},
               "max_stops": 1, "refundable": False}
WEATHER_RESULT = '{"temperature": 21, "condition": "sunny", "wind": "5 km/h"}'
FLIGHT_RESULT = '[{"flight": "AF276", "stops": 0, "price_eur": 1180}]'


def user(content):
    return {"role": "user", "content": content}


def assistant(content, **extra):
    return {"role": "assistant", "content": content, **extra}


def tool_call(call_id, name, arguments):
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": arguments}}


def tool_result(call_id, name, content):
    return {"role": "tool", "tool_call_id": call_id, "name": name,
            "content": content}


SYSTEM = {"role": "system", "content": "You are a concise assistant. Answer in one sentence."}
WEATHER_QUESTION = user("What's the weather in Paris right now?")
BOTH_QUESTION = user("Weather in Paris, and flights from CDG to Tokyo with at most one stop?")

# (name, messages, tools, kwargs, add_generation_prompt values). Every
# conversation is rendered with add_generation_prompt=True; those listing
# False too are rendered both ways.
CONVERSATIONS = [
    ("single_user", [user("Hello! What can you do?")], None, {}, (True, False)),
    ("system_user", [SYSTEM, user("Why is the sky blue?")], None, {}, (True, False)),
    # Whitespace at the ends (templates that trim differ from those that do
    # not), non-ASCII and emoji, and a content spanning lines.
    ("multi_turn", [
        user("  Bonjour! Grüße aus Köln 👋 — 日本語も話せますか?  "),
        assistant("Oui ! はい、話せます。😊\n"),
        user("Write two lines:\nfirst line\n\tsecond line (indented)\n"),
    ], None, {}, (True, False)),
    ("system_multi_turn", [
        SYSTEM,
        user("Name a prime number."),
        assistant("7"),
        user("A bigger one?"),
        assistant("101"),
        user("And its square?"),
    ], None, {}, (True,)),
    # Ends on the assistant's turn (what a client continuing a message sends).
    ("assistant_last", [
        user("Say hi."),
        assistant("Hi there!"),
    ], None, {}, (True, False)),
    ("tools_offered", [BOTH_QUESTION], TOOLS, {}, (True,)),
    ("tools_offered_system", [SYSTEM, WEATHER_QUESTION], TOOLS, {}, (True,)),
    ("tools_array_param", [user("Tag doc 42 as urgent and billing.")],
     [ARRAY_TOOL], {}, (True,)),
    # transformers' convention: arguments are a dict (content null).
    ("tool_call_dict_args", [
        WEATHER_QUESTION,
        assistant(None, tool_calls=[tool_call("call_1", "get_weather", WEATHER_ARGS)]),
    ], TOOLS, {}, (True, False)),
    # transformers' documented shape: no content at all.
    ("tool_call_no_content", [
        WEATHER_QUESTION,
        {"role": "assistant",
         "tool_calls": [tool_call("call_1", "get_weather", WEATHER_ARGS)]},
    ], TOOLS, {}, (True,)),
    # OpenAI's wire shape: arguments are a JSON string (content "").
    ("tool_call_string_args", [
        WEATHER_QUESTION,
        assistant("", tool_calls=[tool_call("call_1", "get_weather",
                                            json.dumps(WEATHER_ARGS))]),
    ], TOOLS, {}, (True, False)),
    # Content "" from here on: many templates concatenate or search the
    # content and fail on null, which the case above already records.
    ("tool_result", [
        WEATHER_QUESTION,
        assistant("", tool_calls=[tool_call("call_1", "get_weather", WEATHER_ARGS)]),
        tool_result("call_1", "get_weather", WEATHER_RESULT),
    ], TOOLS, {}, (True,)),
    ("tool_result_then_answer", [
        SYSTEM,
        WEATHER_QUESTION,
        assistant("", tool_calls=[tool_call("call_1", "get_weather", WEATHER_ARGS)]),
        tool_result("call_1", "get_weather", WEATHER_RESULT),
        assistant("It is 21 °C and sunny in Paris."),
        user("Thanks! And tomorrow?"),
    ], TOOLS, {}, (True,)),
    ("parallel_tool_calls", [
        BOTH_QUESTION,
        assistant("", tool_calls=[
            tool_call("call_1", "get_weather", WEATHER_ARGS),
            tool_call("call_2", "search_flights", FLIGHT_ARGS),
        ]),
        tool_result("call_1", "get_weather", WEATHER_RESULT),
        tool_result("call_2", "search_flights", FLIGHT_RESULT),
    ], TOOLS, {}, (True,)),
    # Mistral's templates insist on 9-character alphanumeric call ids (and
    # reject "call_1" above); this one takes their success path.
    ("tool_result_9char_ids", [
        WEATHER_QUESTION,
        assistant("", tool_calls=[tool_call("a1B2c3D4e", "get_weather", WEATHER_ARGS)]),
        tool_result("a1B2c3D4e", "get_weather", WEATHER_RESULT),
    ], TOOLS, {}, (True,)),
    # chat_template_kwargs of Qwen3 / SmolLM3 style templates.
    ("thinking_on", [user("What is 17 * 23?")], None,
     {"enable_thinking": True}, (True,)),
    ("thinking_off", [user("What is 17 * 23?")], None,
     {"enable_thinking": False}, (True,)),
    # Reasoning from an earlier turn, inline and as reasoning_content.
    ("think_in_history", [
        user("What is 17 * 23?"),
        assistant("<think>\n17 * 23 = 17 * 20 + 17 * 3 = 340 + 51.\n</think>\n\n391"),
        user("And 391 + 9?"),
    ], None, {}, (True,)),
    ("reasoning_content_history", [
        user("What is 17 * 23?"),
        assistant("391", reasoning_content="17 * 20 + 17 * 3 = 340 + 51 = 391."),
        user("And 391 + 9?"),
    ], None, {}, (True,)),
    # Content as a list of parts (OpenAI's multi-part shape).
    ("content_parts", [
        {"role": "user", "content": [{"type": "text", "text": "Describe a sunset in five words."}]},
    ], None, {}, (True,)),
    # A role most templates do not know: some raise_exception, some skip it,
    # some print it.
    ("unknown_role", [
        user("Hello."),
        {"role": "narrator", "content": "The user waits."},
        user("Are you there?"),
    ], None, {}, (True,)),
]


# --- transformers' environment -----------------------------------------------

class AssistantTracker(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %}, as transformers defines it.

    transformers uses the tag to find the assistant's tokens when asked for
    an assistant mask; otherwise (always, here) the body renders unchanged.
    """
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(
            self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller):
        return caller()


class RaisedByTemplate(jinja2.exceptions.TemplateError):
    """What raise_exception raises: a TemplateError, as in transformers; the
    subclass only lets the output tell it from jinja2's own errors."""


def raise_exception(message):
    raise RaisedByTemplate(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers replaces jinja2's tojson, which would HTML-escape <>&' and
    # always sort keys.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent,
                      separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return CLOCK.strftime(format)


def make_environment():
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True,
        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


# --- Rendering -----------------------------------------------------------------

def make_context(template_name, messages, tools, kwargs, add_generation_prompt):
    """The keyword arguments of render(), in the order transformers passes
    them (messages, tools, add_generation_prompt, special tokens, then
    chat_template_kwargs)."""
    bos, eos = SPECIAL_TOKENS.get(template_name, DEFAULT_SPECIAL_TOKENS)
    context = {
        "messages": messages,
        "tools": tools,
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos,
        "eos_token": eos,
        **kwargs,
    }
    # Rendered from its JSON form (a fresh copy, too), so the C++ engine, fed
    # the same JSON, sees exactly the values jinja2 saw.
    return json.loads(json.dumps(context))


def render(template, context):
    """Returns the case's outcome: {"expected": ...} or {"error": ...}."""
    try:
        return {"expected": template.render(**context)}
    except RaisedByTemplate as e:
        return {"error": str(e), "error_type": "raise_exception"}
    except Exception as e:  # noqa: BLE001 -- any failure is an outcome to match
        return {"error": str(e), "error_type": type(e).__name__}


def render_template(env, name, source):
    """All cases of one template, or None when jinja2 cannot parse it."""
    try:
        template = env.from_string(source)
    except jinja2.exceptions.TemplateSyntaxError as e:
        print(f"  {name}: jinja2 cannot parse it: {e}", file=sys.stderr)
        return None
    cases = []
    for conv, messages, tools, kwargs, generation_prompts in CONVERSATIONS:
        for add_generation_prompt in generation_prompts:
            context = make_context(name, messages, tools, kwargs,
                                   add_generation_prompt)
            case = {"template": name, "required": name in REQUIRED,
                    "conversation": conv if add_generation_prompt
                    else conv + "/no_generation_prompt",
                    "context": context}
            case.update(render(template, context))
            cases.append(case)
    return cases


def main(argv):
    if len(argv) != 3:
        sys.exit(f"usage: {argv[0]} TEMPLATES_DIR OUT.json")
    templates_dir, out_path = argv[1], argv[2]
    names = sorted(n for n in os.listdir(templates_dir) if n.endswith(".jinja"))
    missing = [n for n in REQUIRED if n not in names]
    env = make_environment()

    cases, skipped, unparsed_required = [], [], []
    for name in names:
        with open(os.path.join(templates_dir, name), encoding="utf-8") as f:
            source = f.read()
        template_cases = render_template(env, name, source)
        if template_cases is None and name in REQUIRED:
            unparsed_required.append(name)
        elif name not in REQUIRED and (
                template_cases is None
                or all("error" in c for c in template_cases)):
            skipped.append(name)
        else:
            cases.extend(template_cases)

    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"clock": CLOCK.isoformat(), "cases": cases}, f,
                  ensure_ascii=False, indent=1)
        f.write("\n")

    required_cases = [c for c in cases if c["required"]]
    print(f"render_reference: {len(names)} templates found, "
          f"{len(REQUIRED) - len(missing)}/{len(REQUIRED)} required present, "
          f"{len(names) - len(REQUIRED) + len(missing) - len(skipped)} extra "
          f"written, {len(skipped)} extra skipped (jinja2 renders no "
          f"conversation): {', '.join(skipped) or '-'}", file=sys.stderr)
    print(f"render_reference: {len(cases)} cases ({len(required_cases)} "
          f"required), {sum('error' in c for c in cases)} jinja2 errors "
          f"({sum('error' in c for c in required_cases)} required)",
          file=sys.stderr)
    if missing or unparsed_required:
        print(f"error: required templates missing from {templates_dir}: "
              f"{', '.join(missing) or '-'}; that jinja2 cannot parse: "
              f"{', '.join(unparsed_required) or '-'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
