#!/usr/bin/env python3
"""Render chat templates with Python jinja2 exactly as transformers' apply_chat_template does
(ImmutableSandboxedEnvironment, trim_blocks=True, lstrip_blocks=True, raise_exception global)
and write the expected strings to tests/fixtures/runtime/chat_templates.json.

Usage: scripts/gen_chat_template_fixtures.py [SMOLLM2_TOKENIZER_CONFIG] [OUT_JSON]
"""
import json
import os
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Public templates (tokenizer_config.json "chat_template" of each model).
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim "
    "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant"
    "<|end_header_id|>\\n\\n' }}{% endif %}"
)
QWEN2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant "
    "roles are supported!') }}{% endif %}{% endfor %}"
)
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation "
    "roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 "
    "and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}"
    "{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + "
    "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + "
    "eos_token }}{% endif %}{% endfor %}"
)
ZEPHYR = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and "
    "add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)
# Not a model template: exercises the rest of the supported subset.
FEATURES = """{#- a comment -#}
{%- set greeting = "Hi\\t\\u00e9\\x41 \\"q\\" \\\\ " ~ 'x' -%}
{{ greeting }}|{{ messages | length }}|{{ (messages | first)['role'] | upper }}|{{ (messages | last).role | lower }}
{% for m in messages %}
    {% if loop.first %}[first]{% elif loop.last %}[last]{% else %}[mid]{% endif %}
  {{- loop.index }}/{{ loop.length }} {{ loop.revindex0 }} {{ m.role ~ ':' ~ m['content'] | trim }}
{% endfor %}
{%- for x in [] %}never{% else %}empty-else{% endfor %}
{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 2 * 3 + 1 }} {{ 1 / 4 }} {{ 'ab' in 'cabd' }} {{ 'z' not in ['a', 'b'] }}
{{ undefined_var is defined }} {{ messages is defined }} {{ none_var | default('dflt') }} {{ 'yes' if add_generation_prompt else 'no' }}
{{ ['a', 'b', 'c'] | join('-') }} {{ 'abc'[1:] }} {{ messages[-1]['content'][:3] }} {{ {'k': 1}['k'] }}
{%- for k, v in {'one': 1, 'two': 2}.items() %} {{ k }}={{ v }}{% endfor %}
{% for i in range(3) %}{{ i }}{{ ',' if not loop.last }}{% endfor %}
{{ not true or false and true }} {{ 1 < 2 < 3 }} {{ 3 > 2 >= 2 }} {{ 'a' ~ 1 ~ none }} {{ 4 is even }} {{ none_var is none }}
   {% if add_generation_prompt -%}
   gen   
   {%- endif %}
end"""

CONVS = {
    "user": [{"role": "user", "content": "Hello!"}],
    "system_user": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "multi_turn": [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ],
    "no_system_multi": [
        {"role": "user", "content": "  padded question \n"},
        {"role": "assistant", "content": " answer with spaces  "},
        {"role": "user", "content": "Unicode: h\u00e9llo \u4e16\u754c \U0001F30D"},
    ],
    "non_alternating": [
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
    ],
}

TEMPLATES = {
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
    "qwen2": (QWEN2, "", "<|im_end|>"),
    "mistral": (MISTRAL, "<s>", "</s>"),
    "llama2": (LLAMA2, "<s>", "</s>"),
    "zephyr": (ZEPHYR, "<s>", "</s>"),
    "features": (FEATURES, "<s>", "</s>"),
}


class TemplateError(Exception):
    pass


def raise_exception(message):
    raise TemplateError(message)


def main():
    cfg_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "models/smollm2-fp32/tokenizer_config.json")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        ROOT, "tests/fixtures/runtime/chat_templates.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    templates = {"smollm2": (cfg["chat_template"], cfg.get("bos_token", ""), cfg.get("eos_token", ""))}
    templates.update(TEMPLATES)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    cases = []
    for name, (src, bos, eos) in templates.items():
        tmpl = env.from_string(src)
        for conv_name, msgs in CONVS.items():
            for agp in (False, True):
                ctx = {"messages": msgs, "add_generation_prompt": agp, "bos_token": bos,
                       "eos_token": eos}
                case = {"template": name, "conversation": conv_name, "context": ctx}
                try:
                    case["expected"] = tmpl.render(**ctx)
                except TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    doc = {"generator": "scripts/gen_chat_template_fixtures.py", "jinja2": jinja2.__version__,
           "templates": {k: v[0] for k, v in templates.items()}, "cases": cases}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
