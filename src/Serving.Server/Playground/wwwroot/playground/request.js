// Request bodies from the settings controls, in OpenAI's field names (plus vLLM's top_k). A control left empty
// is not sent, so the server's default applies. Ranges are the server's to check: its 400 names the field.

const $ = id => document.getElementById(id);

/// A setting the page cannot send as typed (a JSON text that does not parse); control is its element id.
export class SettingError extends Error {
  constructor(control, message) {
    super(message);
    this.control = control;
  }
}

function number(id) {
  const text = $(id).value.trim();
  return text === '' || Number.isNaN(Number(text)) ? undefined : Number(text);
}

/// One stop string per line; "\n" and "\t" written out stand for a newline and a tab.
function stopStrings() {
  return $('stop-sequences').value.split('\n').filter(s => s !== '').map(s => s.replaceAll('\\n', '\n').replaceAll('\\t', '\t'));
}

function json(id, what) {
  const text = $(id).value.trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SettingError(id, `${what} is not valid JSON: ${e.message}`);
  }
}

export const wantsTokens = () => $('show-tokens').checked;

function sampling() {
  const stop = stopStrings();
  return {
    temperature: number('temperature'),
    top_p: number('top-p'),
    top_k: number('top-k'),
    max_tokens: number('max-tokens'),
    seed: number('seed'),
    stop: stop.length ? stop : undefined,
  };
}

/// response_format, tools and tool_choice, as OpenAI's chat API takes them.
function structured() {
  const fields = {};
  const format = $('response-format').value;
  if (format === 'json_object') fields.response_format = { type: 'json_object' };
  if (format === 'json_schema') {
    const schema = json('json-schema', 'The JSON schema');
    if (schema === undefined) throw new SettingError('json-schema', 'A json_schema response format needs a schema.');
    fields.response_format = {
      type: 'json_schema',
      json_schema: { name: $('schema-name').value.trim() || 'response', schema, strict: $('schema-strict').checked },
    };
  }
  const tools = json('tools', 'Tools');
  if (tools !== undefined) {
    if (!Array.isArray(tools)) throw new SettingError('tools', 'Tools must be a JSON array of tool definitions.');
    fields.tools = tools;
    fields.tool_choice = $('tool-choice').value;
  }
  return fields;
}

const streamed = { stream: true, stream_options: { include_usage: true } };

export function chatBody(model, messages) {
  // tokens by their text, whatever the server's --return-tokens-as-token-ids: the view shows the text
  const logprobs = wantsTokens() ? { logprobs: true, top_logprobs: number('top-logprobs') ?? 5, return_tokens_as_token_ids: false } : {};
  return { model, messages, ...sampling(), ...logprobs, ...structured(), ...streamed };
}

export function completionBody(model, prompt) {
  const logprobs = wantsTokens() ? { logprobs: number('top-logprobs') ?? 5, return_tokens_as_token_ids: false } : {};
  return { model, prompt, ...sampling(), ...logprobs, ...streamed };
}
