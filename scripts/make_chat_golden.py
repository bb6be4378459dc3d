#!/usr/bin/env python3
"""Renders chat templates with jinja2 (as Hugging Face transformers does) to
check tpserve's chat templates (tests/chat_template_test.cc): the default
model's own template (read from its GGUF) and Meta's Llama 3 and Llama 2
chat templates, which are also tpserve's built-in `llama3` and `llama2`.

Writes tests/golden/chat_templates.json.
Usage: scripts/make_chat_golden.py MODEL.gguf  (needs: pip install gguf jinja2)
"""
import json
import os
import sys

import gguf
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}")

CONVERSATIONS = [
    [{"role": "user", "content": "Hi there!"}],
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "  Tell me a joke.\n"},
     {"role": "assistant", "content": "Why did the llama cross the road?"},
     {"role": "user", "content": "Why?"}],
    [{"role": "system", "content": "Be kind."},
     {"role": "user", "content": "Ünïcödé ✓ 🦙"},
     {"role": "assistant", "content": "Sure."},
     {"role": "user", "content": "Multi\nline\n\ncontent"}],
]


def render(source, messages, add_generation_prompt, bos, eos):
    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source).render(
        messages=messages, add_generation_prompt=add_generation_prompt,
        bos_token=bos, eos_token=eos)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    r = gguf.GGUFReader(sys.argv[1])
    smol = r.fields["tokenizer.chat_template"].contents()
    templates = {
        "smollm2": (smol, "<|im_start|>", "<|im_end|>", "chatml"),
        "llama3": (LLAMA3, "<|begin_of_text|>", "<|end_of_text|>", "llama3"),
        "llama2": (LLAMA2, "<s>", "</s>", "llama2"),
    }
    out = {"templates": {}, "cases": []}
    for name, (source, bos, eos, family) in templates.items():
        out["templates"][name] = {"source": source, "bos": bos, "eos": eos,
                                  "family": family}
        for messages in CONVERSATIONS:
            for gen in (False, True):
                try:
                    text = render(source, messages, gen, bos, eos)
                    error = False
                except jinja2.exceptions.TemplateError:
                    text, error = "", True
                out["cases"].append({"template": name, "messages": messages,
                                     "add_generation_prompt": gen,
                                     "expected": text, "error": error})
    path = os.path.join(HERE, "..", "tests", "golden", "chat_templates.json")
    with open(path, "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
