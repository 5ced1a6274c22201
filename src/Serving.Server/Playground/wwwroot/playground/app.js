// The playground's entry point: connects to the server (asking for the API key when it wants one), then
// shows the model and starts the conversation and the live engine panel.

import * as api from './api.js';
import { Conversation } from './conversation.js';
import { PoolingForm, RerankForm } from './pooling.js';
import { EnginePanel, showModel } from './panels.js';
import { showGqa } from './gqa.js';
import { wireTokenTips } from './tokens.js';
import { el } from './format.js';

const $ = id => document.getElementById(id);

const engine = new EnginePanel(authFailed);
const conversation = new Conversation({ onAuthError: authFailed, onActivity: () => engine.refresh() });
const pooling = new PoolingForm(authFailed);
const rerank = new RerankForm(authFailed);

/// The notice under the header: auth and connection problems, which block everything else.
function notice(kind, title, text) {
  const box = $('notice');
  box.dataset.kind = kind;
  box.replaceChildren(el('strong', {}, title), ' ', text);
  box.hidden = false;
}

function authFailed(error) {
  conversation.setModel(null);
  pooling.setModel(null);
  rerank.setModel(null);
  $('model-badge').textContent = 'API key needed';
  $('key-form').classList.add('attention');
  if (api.hasKey()) {
    notice('error', 'The server rejected this API key.', `Enter the key the server was started with (--api-key). (${error.status}: ${error.message})`);
    $('api-key').select();
  } else {
    notice('info', 'This server requires an API key.', 'Enter it above; the page sends it as "Authorization: Bearer <key>".');
  }
  $('api-key').focus();
}

let retry = null;
/// The server pools (--runner pooling: embeddings or a classifier): no model, picked or not, can be chatted with.
let poolingServer = false;

async function connect() {
  clearTimeout(retry);
  let cards, card;
  try {
    cards = (await api.getJson('v1/models')).data;
    card = cards[0];
  } catch (e) {
    if (e.isAuth) return authFailed(e);
    engine.stop();
    notice('error', e.status === 503 ? 'The model is not ready yet.' : 'Cannot load the model.', `${e.message} Retrying\u2026`);
    retry = setTimeout(connect, 2000);
    return;
  }
  $('notice').hidden = true;
  $('key-form').classList.remove('attention');
  $('model-badge').textContent = `${card.id} \u00b7 ${card.model_info.architecture} \u00b7 ${card.model_info.device}`;
  document.title = `${card.id} \u00b7 Serving playground`;
  defaultMaxTokens(card.max_model_len);
  showModel(card);
  showGqa(card.model_info);
  pickModels(cards);
  engine.start();
  poolingServer = card.model_info.runner === 'pooling';
  $('composer').hidden = poolingServer;
  $('transcript-scroll').hidden = poolingServer;
  if (poolingServer) {
    // a pooling server (embeddings or classification) answers no chat: say what it serves instead of failing each
    // message, and offer its embeddings instead
    conversation.setModel(null);
    const labels = card.model_info.labels ?? [];
    pooling.setModel($('model-select').value || card.id, labels);
    rerank.setModel($('model-select').value || card.id, labels);
    notice('info', 'This server runs the pooling runner (--runner pooling).', labels.length > 1
      ? 'It answers POST /v1/classify (the form below) and /pooling; chat and completions are off.'
      : labels.length === 1
        ? 'It answers POST /v1/classify, /score and /rerank (the forms below); chat and completions are off.'
        : 'It answers POST /v1/embeddings, /score and /rerank (the forms below); chat and completions are off.');
    return;
  }
  pooling.setModel(null);
  rerank.setModel(null);
  conversation.setModel($('model-select').value || card.id);
}

/// With LoRA adapters (--lora-modules) the server lists several models: a picker sends the chosen one as "model"
/// (the panels keep showing the model they all share). The choice survives a reconnect when it is still listed.
function pickModels(cards) {
  const select = $('model-select');
  const chosen = select.value;
  select.replaceChildren(...cards.map(c => el('option', { value: c.id }, c.parent ? `${c.id} (LoRA of ${c.parent})` : c.id)));
  if (cards.some(c => c.id === chosen)) select.value = chosen;
  $('model-pick').hidden = cards.length < 2;
}

/// Until the user sets it: 256 tokens, or half the context of a short-context model (a prompt needs room too).
function defaultMaxTokens(maxModelLen) {
  const input = $('max-tokens');
  input.max = String(maxModelLen);
  if (!input.dataset.touched) input.value = String(Math.min(256, Math.floor(maxModelLen / 2)));
}

/// Each number input gets a slider twin (for the mouse); the number input is the labelled control.
$('model-select').addEventListener('change', () => {
  if (poolingServer) pooling.setModel($('model-select').value, pooling.labels);
  else conversation.setModel($('model-select').value);
});

function pairSliders() {
  for (const range of document.querySelectorAll('input[type=range][data-for]')) {
    const number = $(range.dataset.for);
    range.value = number.value;
    range.addEventListener('input', () => { number.value = range.value; });
    number.addEventListener('input', () => { if (number.value !== '') range.value = number.value; });
  }
}

function wireSettings() {
  $('max-tokens').addEventListener('input', e => { e.target.dataset.touched = 'true'; });
  const format = $('response-format');
  const showSchema = () => { $('schema-fields').hidden = format.value !== 'json_schema'; };
  format.addEventListener('change', showSchema);
  showSchema();
  $('tools-example').addEventListener('click', () => {
    $('tools').value = JSON.stringify([{
      type: 'function',
      function: {
        name: 'get_weather', description: 'Current weather in a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
    }], null, 2);
  });
  $('key-form').addEventListener('submit', e => {
    e.preventDefault();
    api.setKey($('api-key').value);
    connect();
  });
  $('api-key').value = api.currentKey();
}

// Following "#composer-input" scrolls to the box but leaves focus where it was; the link is there to move it.
document.querySelector('.skip-link').addEventListener('click', e => { e.preventDefault(); $('composer-input').focus(); });

pairSliders();
wireSettings();
wireTokenTips($('transcript-scroll'), $('token-tip'));
connect();
