#!/usr/bin/python3
"""Renders the chat templates in this folder with jinja2 exactly as transformers' apply_chat_template does
and writes <template>.golden.json next to each, for ChatTemplateGoldenTests. Run with Debian's python3-jinja2:

    /usr/bin/python3 tests/Serving.Engine.Tests/Templates/Data/render_golden.py

The templates are the "chat_template" strings of the models' tokenizer_config.json (see README.md here).
"""
import json
import os
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))

# file -> (bos_token, eos_token) from the model's tokenizer_config.json (None: the tokenizer has none)
TEMPLATES = {
    "llama-3.1-8b-instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "mistral-7b-instruct-v0.3.jinja": ("<s>", "</s>"),
    "qwen2.5-7b-instruct.jinja": (None, "<|im_end|>"),
    "tinyllama-1.1b-chat-v1.0.jinja": ("<s>", "</s>"),
    "chatml.jinja": ("<|begin_of_text|>", "<|im_end|>"),
    "qwen3-1.7b.jinja": (None, "<|im_end|>"),
    "llama-3.2-3b-instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "phi-3.5-mini-instruct.jinja": ("<s>", "<|endoftext|>"),
    "mistral-nemo-instruct-2407.jinja": ("<s>", "</s>"),
    "minicpm3-4b.jinja": ("<s>", "<|im_end|>"),
    "openchat-3.5-0106.jinja": ("<s>", "<|end_of_turn|>"),
    "functionary-small-v2.5.jinja": ("<|begin_of_text|>", "<|end_of_text|>"),
    "falcon-rw-1b-chat.jinja": ("<|endoftext|>", "<|endoftext|>"),
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city, in \"metric\" units — e.g. 22°C.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7, "default": 1},
                "scale": {"type": "number", "default": 0.5},
                "tags": {"type": "array", "items": {"type": "string"}},
                "strict": {"type": "boolean", "default": False},
                "extra": {"type": "object", "properties": {}},
            },
            "required": ["city"],
        },
    },
}

SYSTEM = {"role": "system", "content": "You are a concise assistant.\n"}
USER = {"role": "user", "content": "  What's the capital of France?  "}
ASSISTANT = {"role": "assistant", "content": "Paris.   "}
USER2 = {"role": "user", "content": "And of Japan? Answer with \"quotes\", 'apostrophes' and ünïcødé ✓ 🙂."}

TOOL_CALL = {
    "role": "assistant",
    "content": "",
    "tool_calls": [{"id": "call12345", "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2, "scale": 1.5}}}],
}
TOOL_RESULT = {"role": "tool", "tool_call_id": "call12345", "name": "get_weather",
               "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"}
TOOL_RESULT_OBJECT = dict(TOOL_RESULT, content={"temperature": 21.5, "ok": True, "note": None, "it's": [1, "a\nb", 2e-7]})
TWO_TOOL_CALLS = dict(TOOL_CALL, tool_calls=TOOL_CALL["tool_calls"] * 2)
# reasoning models (Qwen3): thinking inline in an earlier answer, or as vLLM's reasoning_content field
ASSISTANT_THOUGHT = {"role": "assistant", "content": "<think>\nThe capital of France is Paris.\n</think>\n\nParis."}
ASSISTANT_REASONING = {"role": "assistant", "content": "\nParis.", "reasoning_content": "\nFrance's capital: Paris.\n"}

LLAMA_DATE = {"date_string": "15 Mar 2025"}

CONVERSATIONS = [
    ("system_user_prompt", [SYSTEM, USER], True, {}),
    ("system_user_no_prompt", [SYSTEM, USER], False, {}),
    ("user_only_prompt", [USER], True, {}),
    ("multi_turn_prompt", [USER, ASSISTANT, USER2], True, {}),
    ("multi_turn_system_no_prompt", [SYSTEM, USER, ASSISTANT, USER2, ASSISTANT], False, {}),
    ("tools_prompt", [SYSTEM, USER2], True, {"tools": [WEATHER_TOOL]}),
    ("tool_call_and_result", [USER, TOOL_CALL, TOOL_RESULT], True, {"tools": [WEATHER_TOOL]}),
    ("tool_result_object", [USER, TOOL_CALL, TOOL_RESULT_OBJECT], False, {"tools": [WEATHER_TOOL]}),
    ("tools_not_in_user_message", [SYSTEM, USER], True, {"tools": [WEATHER_TOOL], "tools_in_user_message": False}),
    ("two_user_turns_invalid", [USER, USER2], True, {}),
    ("two_tool_calls", [USER, TWO_TOOL_CALLS, TOOL_RESULT], True, {"tools": [WEATHER_TOOL]}),
    ("assistant_first_invalid", [ASSISTANT, USER], False, {}),
    ("thought_in_history", [USER, ASSISTANT_THOUGHT, USER2], True, {}),
    ("thought_in_last_answer", [USER, ASSISTANT_THOUGHT], False, {}),
    ("reasoning_content_last_answer", [SYSTEM, USER, ASSISTANT_REASONING], False, {}),
    ("thinking_disabled", [USER], True, {"enable_thinking": False}),
    ("continue_prefill", [USER, {"role": "assistant", "content": "The capital is "}], False, {"continue_final_message": True}),
    ("continue_prefill_stripped", [SYSTEM, USER, {"role": "assistant", "content": "  {\"city\": "}], False, {"continue_final_message": True}),
    ("tool_call_after_thought", [USER, dict(TOOL_CALL, content="<think>\nI need the weather.\n</think>\n\n"), TOOL_RESULT], True,
     {"tools": [WEATHER_TOOL]}),
]


def make_environment():
    """transformers.utils.chat_template_utils._compile_jinja_template, minus the {% generation %} tracker."""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, bos, eos, messages, add_generation_prompt, extra):
    extra = dict(extra)
    continue_final_message = extra.pop("continue_final_message", False)
    kwargs = {"messages": messages, "tools": None, "documents": None, "add_generation_prompt": add_generation_prompt}
    if bos is not None:
        kwargs["bos_token"] = bos
    if eos is not None:
        kwargs["eos_token"] = eos
    kwargs.update(extra)
    rendered = env.from_string(source).render(**kwargs)
    return continue_final(rendered, messages) if continue_final_message else rendered


def continue_final(rendered, messages):
    """transformers' apply_chat_template(continue_final_message=True): cut the text after the final message."""
    final_message = messages[-1]["content"]
    if final_message.strip() not in rendered:
        raise ValueError("continue_final_message is set but the final message does not appear in the chat")
    final_msg_loc = rendered.rindex(final_message.strip())
    if rendered[final_msg_loc: final_msg_loc + len(final_message.lstrip())] == final_message:
        return rendered[: final_msg_loc + len(final_message.lstrip())]
    return rendered[: final_msg_loc + len(final_message.strip())]


def main():
    env = make_environment()
    for file, (bos, eos) in TEMPLATES.items():
        with open(os.path.join(HERE, file), encoding="utf-8") as f:
            source = f.read()
        cases = []
        for name, messages, add_generation_prompt, extra in CONVERSATIONS:
            extra = dict(extra, **LLAMA_DATE) if file.startswith("llama") else extra
            case = {"name": name, "messages": messages, "add_generation_prompt": add_generation_prompt,
                    "extra_context": extra}
            try:
                case["rendered"] = render(env, source, bos, eos, messages, add_generation_prompt, extra)
            except jinja2.exceptions.TemplateError as e:  # the template's raise_exception
                case["error"] = str(e)
                case["raised_by_template"] = True
            except (TypeError, ValueError) as e:  # the template cannot handle this input (e.g. str + dict)
                case["error"] = f"{type(e).__name__}: {e}"
                case["raised_by_template"] = False
            cases.append(case)
        golden = {"template": file, "bos_token": bos, "eos_token": eos, "jinja2": jinja2.__version__, "cases": cases}
        out = os.path.join(HERE, file.replace(".jinja", ".golden.json"))
        with open(out, "w", encoding="utf-8") as f:
            json.dump(golden, f, ensure_ascii=False, indent=2)
            f.write("\n")
        print(f"{out}: {sum('rendered' in c for c in cases)} rendered, {sum('error' in c for c in cases)} errors")


if __name__ == "__main__":
    main()
