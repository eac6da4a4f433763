"""The chat format as a Jinja template, for the tools that render chats themselves.

A conversation is <|bos|>, then per turn <|user_start|> text <|user_end|> or
<|assistant_start|> text <|assistant_end|>; a prompt for the model's reply ends with
<|assistant_start|>. Hugging Face transformers (tokenizer_config.json's chat_template) and
llama.cpp (GGUF's tokenizer.chat_template) read the format as this Jinja string, which the
hub exports write next to a model that has the chat tokens.

A system message has no token of its own: like nanochat, it is put in front of the first
user message. Tool calls are text parts the engine inserts; a template only renders
plain-text messages.

Read next: minillm/hub/ (the exports that carry it).
"""

CHAT_TEMPLATE = (
    "{%- set ns = namespace(system='') -%}"
    "{{- '<|bos|>' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- set ns.system = message['content'] + '\\n\\n' -%}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- '<|user_start|>' + ns.system + message['content'] + '<|user_end|>' -}}"
    "{%- set ns.system = '' -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '<|assistant_start|>' + message['content'] + '<|assistant_end|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant_start|>' -}}{%- endif -%}"
)
